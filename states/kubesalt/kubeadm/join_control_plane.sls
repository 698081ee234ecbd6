{#- Join a further master: kubeadm downloads the shared certificates the first master
    uploaded (decrypted with the certificate key) and starts a control-plane instance
    against the external etcd. #}
{%- from "kubesalt/map.jinja" import kubesalt, is_master, is_first_master, kubectl with context %}
{%- from "kubesalt/macros.jinja" import need, wrong_role with context %}
{%- from "kubesalt/kubeadm/join.jinja" import kubeadm_join with context %}

{%- if not is_master or is_first_master %}
{{ wrong_role("kubeadm control-plane join runs on the other masters only",
              "is the first master (it runs kubesalt.kubeadm.init)" if is_first_master
              else "is not a master (it runs kubesalt.kubeadm.join_worker)") }}
{%- else %}
{{- need(["kubeadm:token", "kubeadm:ca_cert_hash", "kubeadm:certificate_key",
          "cluster:control_plane_endpoint"]) }}
{{ kubeadm_join("control-plane node") }}

# kubeadm writes admin.conf on joined masters too; the stage is done when it works.
Wait for the API server to be ready:
  cmd.run:
    - name: {{ kubectl }} get --raw=/readyz
    - unless: {{ kubectl }} get --raw=/readyz
    - retry:
        attempts: {{ kubesalt.kubeadm.api_wait_attempts }}
        interval: {{ kubesalt.kubeadm.api_wait_interval }}
    - require:
      - cmd: Join the cluster as a control-plane node
{%- endif %}
