{#- Join a worker (any node without the master role, storage nodes included). #}
{%- from "kubesalt/map.jinja" import is_master with context %}
{%- from "kubesalt/macros.jinja" import need, wrong_role with context %}
{%- from "kubesalt/kubeadm/join.jinja" import kubeadm_join with context %}

{%- if is_master %}
{{ wrong_role("kubeadm worker join runs on non-masters only",
              "is a master; it runs kubesalt.kubeadm.init or"
              ~ " kubesalt.kubeadm.join_control_plane") }}
{%- else %}
{{- need(["kubeadm:token", "kubeadm:ca_cert_hash", "cluster:control_plane_endpoint"]) }}
{{ kubeadm_join("worker") }}
{%- endif %}
