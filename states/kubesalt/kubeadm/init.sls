{#- kubeadm init on the first master, against the external etcd of the etcd stage, with the
    cluster CA the controller generated (so the controller knows the CA hash that joining
    nodes pin before any node exists). Secrets stay out of command lines and state output:
    the token and certificate key live in the 0600 config file, and kubeadm's output (which
    repeats them in its join hints) is not logged. #}
{%- from "kubesalt/map.jinja" import kubesalt, paths, kubectl, is_first_master with context %}
{%- from "kubesalt/macros.jinja" import need, wrong_role with context %}

{%- if not is_first_master %}
{{ wrong_role("kubeadm init runs on the first master only",
              "is not the first master; other masters run"
              ~ " kubesalt.kubeadm.join_control_plane") }}
{%- else %}
{{- need(["kubeadm:token", "kubeadm:ca_cert", "kubeadm:ca_key", "kubeadm:certificate_key",
          "etcd:ca_cert", "etcd:cert", "etcd:key", "cluster:control_plane_endpoint",
          "cluster:pod_subnet", "cluster:service_subnet"]) }}
{%- set pki = paths.kubernetes_dir ~ "/pki" %}
{%- set kubeadm = kubesalt.kubeadm %}
{%- set etcd = kubesalt.etcd %}

# With ca.crt and ca.key in place kubeadm signs every other certificate with this CA
# instead of generating one.
Place the Kubernetes CA certificate:
  file.managed:
    - name: {{ pki }}/ca.crt
    - contents: {{ kubeadm.ca_cert | yaml_encode }}
    - mode: '0644'
    - makedirs: True

Place the Kubernetes CA key:
  file.managed:
    - name: {{ pki }}/ca.key
    - contents: {{ kubeadm.ca_key | yaml_encode }}
    - mode: '0600'
    - makedirs: True
    - show_changes: False

# The API server's client credentials for the external etcd. Not etcd's own files under
# /etc/etcd/pki: `--upload-certs` shares these paths with the joining masters, whose
# download would otherwise overwrite their own etcd member's certificate.
Place the etcd CA certificate for the API server:
  file.managed:
    - name: {{ pki }}/etcd/ca.crt
    - contents: {{ etcd.ca_cert | yaml_encode }}
    - mode: '0644'
    - makedirs: True

Place the API server's etcd client certificate:
  file.managed:
    - name: {{ pki }}/apiserver-etcd-client.crt
    - contents: {{ etcd.cert | yaml_encode }}
    - mode: '0644'
    - makedirs: True

Place the API server's etcd client key:
  file.managed:
    - name: {{ pki }}/apiserver-etcd-client.key
    - contents: {{ etcd.key | yaml_encode }}
    - mode: '0600'
    - makedirs: True
    - show_changes: False

Write the kubeadm init configuration:
  file.managed:
    - name: {{ kubeadm.config_file }}
    - source: salt://kubesalt/kubeadm/files/kubeadm-init.yaml.j2
    - template: jinja
    # Holds the bootstrap token and the certificate key.
    - mode: '0600'
    - makedirs: True
    - show_changes: False

Initialise the control plane:
  cmd.run:
    - name: >-
        {{ paths.bin_dir }}/kubeadm init --config {{ kubeadm.config_file }} --upload-certs
        {%- if kubeadm.ignore_preflight_errors %}
        --ignore-preflight-errors={{ kubeadm.ignore_preflight_errors | join(",") }}
        {%- endif %}
    - creates: {{ paths.admin_kubeconfig }}
    - output_loglevel: quiet
    - hide_output: True
    - require:
      - file: Write the kubeadm init configuration
      - file: Place the Kubernetes CA certificate
      - file: Place the Kubernetes CA key
      - file: Place the etcd CA certificate for the API server
      - file: Place the API server's etcd client certificate
      - file: Place the API server's etcd client key

Wait for the API server to be ready:
  cmd.run:
    - name: {{ kubectl }} get --raw=/readyz
    - unless: {{ kubectl }} get --raw=/readyz
    - retry:
        attempts: {{ kubeadm.api_wait_attempts }}
        interval: {{ kubeadm.api_wait_interval }}
    - require:
      - cmd: Initialise the control plane
{%- endif %}
