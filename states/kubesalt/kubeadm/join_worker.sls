{#- Join a worker (any node without the master role, storage nodes included). #}
{%- from "kubesalt/map.jinja" import node, is_master with context %}
{%- from "kubesalt/macros.jinja" import need with context %}
{%- from "kubesalt/kubeadm/join.jinja" import kubeadm_join with context %}

{%- if is_master %}

kubeadm worker join runs on non-masters only:
  test.fail_without_changes:
    - comment: "{{ node.get('id', grains['id']) }} is a master; it runs kubesalt.kubeadm.init or kubesalt.kubeadm.join_control_plane"
{%- else %}
{{- need(["kubeadm:token", "kubeadm:ca_cert_hash", "cluster:control_plane_endpoint"]) }}
{{ kubeadm_join("worker") }}
{%- endif %}
