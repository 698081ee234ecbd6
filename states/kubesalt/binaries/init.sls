{#- The Kubernetes node binaries from the controller's artifact store, each checked against
    the sha256 the controller recorded, and kubelet's systemd unit as the upstream deb/rpm
    packages ship it (kubeadm starts and configures kubelet through it). #}
{%- from "kubesalt/map.jinja" import kubesalt, artifacts, paths, proxy_drop_ins with context %}
{%- from "kubesalt/macros.jinja" import need, proxy_drop_in with context %}
{{- need(["artifacts:kubeadm", "artifacts:kubelet", "artifacts:kubectl", "artifacts:crictl",
          "artifacts:cni_plugins"]) }}

{%- for binary in kubesalt.binaries.kubernetes %}

Install {{ binary }}:
  file.managed:
    - name: {{ paths.bin_dir }}/{{ binary }}
    - source: {{ artifacts[binary].source }}
    - source_hash: sha256={{ artifacts[binary].sha256 }}
    - mode: '0755'
    - makedirs: True
    - show_changes: False
{%- endfor %}

Install crictl:
  archive.extracted:
    - name: {{ paths.bin_dir }}
    - source: {{ artifacts.crictl.source }}
    - source_hash: sha256={{ artifacts.crictl.sha256 }}
    # Re-extract when the controller ships another version (same file name, new hash).
    - source_hash_update: True
    - enforce_toplevel: False
    - archive_format: tar
    - trim_output: 10

Configure crictl for containerd:
  file.managed:
    - name: {{ kubesalt.crictl.config_file }}
    - mode: '0644'
    - contents: |
        runtime-endpoint: unix://{{ kubesalt.containerd.socket }}
        image-endpoint: unix://{{ kubesalt.containerd.socket }}
        timeout: 10

Install the CNI plugins:
  archive.extracted:
    - name: {{ paths.cni_bin_dir }}
    - source: {{ artifacts.cni_plugins.source }}
    - source_hash: sha256={{ artifacts.cni_plugins.sha256 }}
    - source_hash_update: True
    - enforce_toplevel: False
    - archive_format: tar
    - trim_output: 10

Create the CNI configuration directory:
  file.directory:
    - name: {{ paths.cni_conf_dir }}
    - mode: '0755'
    - makedirs: True

Install the kubelet service:
  file.managed:
    - name: {{ paths.systemd_dir }}/kubelet.service
    - source: salt://kubesalt/binaries/files/kubelet.service.j2
    - template: jinja
    - mode: '0644'
    - require:
      - file: Install kubelet

Configure kubelet for kubeadm:
  file.managed:
    - name: {{ paths.systemd_dir }}/kubelet.service.d/10-kubeadm.conf
    - source: salt://kubesalt/binaries/files/10-kubeadm.conf.j2
    - template: jinja
    - mode: '0644'
    - makedirs: True

{{ proxy_drop_in("kubelet") }}

Reload systemd for the kubelet unit:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: Install the kubelet service
      - file: Configure kubelet for kubeadm
      - file: {{ proxy_drop_ins.kubelet }}

# Enabled, not started: like the upstream packages, kubelet runs once kubeadm init/join has
# written its configuration; kubeadm starts it.
Enable kubelet:
  service.enabled:
    - name: kubelet
    - require:
      - module: Reload systemd for the kubelet unit
      - file: Install the kubelet service
