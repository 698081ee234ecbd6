{#- containerd and runc from the controller's artifact store, configured the way kubeadm
    expects: systemd cgroup driver, the pause image of the cluster's Kubernetes minor, CNI
    from /opt/cni/bin. #}
{%- from "kubesalt/map.jinja" import kubesalt, artifacts, paths, proxy, need with context %}
{{- need(["artifacts:containerd", "artifacts:runc"]) }}

# The release tarball holds bin/containerd, bin/containerd-shim-runc-v2, bin/ctr: extracting
# into the prefix (/usr/local) puts them in <prefix>/bin.
Install containerd:
  archive.extracted:
    - name: {{ kubesalt.containerd.prefix }}
    - source: {{ artifacts.containerd.source }}
    - source_hash: sha256={{ artifacts.containerd.sha256 }}
    - source_hash_update: True
    - enforce_toplevel: False
    - archive_format: tar
    - trim_output: 10

# A running containerd binary cannot be overwritten in place ("Text file busy"): when a new
# release is about to be extracted (an upgrade), stop containerd first; "Run containerd"
# starts it again. Containers keep running under their shims meanwhile.
Stop containerd to replace its binaries:
  service.dead:
    - name: containerd
    - prereq:
      - archive: Install containerd

Install runc:
  file.managed:
    - name: {{ paths.sbin_dir }}/runc
    - source: {{ artifacts.runc.source }}
    - source_hash: sha256={{ artifacts.runc.sha256 }}
    - mode: '0755'
    - makedirs: True
    - show_changes: False

Configure containerd:
  file.managed:
    - name: {{ kubesalt.containerd.config_file }}
    - source: salt://kubesalt/containerd/files/config.toml.j2
    - template: jinja
    - mode: '0644'
    - makedirs: True

Install the containerd service:
  file.managed:
    - name: {{ paths.systemd_dir }}/containerd.service
    - source: salt://kubesalt/containerd/files/containerd.service.j2
    - template: jinja
    - mode: '0644'

{%- if proxy %}

Give containerd the proxy environment:
  file.managed:
    - name: {{ paths.systemd_dir }}/containerd.service.d/20-kubesalt-proxy.conf
    - mode: '0644'
    - makedirs: True
    - contents: |
        [Service]
        EnvironmentFile={{ paths.proxy_env }}
{%- set proxy_state = "Give containerd the proxy environment" %}
{%- else %}

No proxy environment for containerd:
  file.absent:
    - name: {{ paths.systemd_dir }}/containerd.service.d/20-kubesalt-proxy.conf
{%- set proxy_state = "No proxy environment for containerd" %}
{%- endif %}

# service.running reloads systemd itself when a unit changed (NeedDaemonReload).
Run containerd:
  service.running:
    - name: containerd
    - enable: True
    - watch:
      - archive: Install containerd
      - file: Install runc
      - file: Configure containerd
      - file: Install the containerd service
      - file: {{ proxy_state }}

Wait for containerd to serve CRI:
  cmd.run:
    - name: {{ paths.bin_dir }}/crictl --runtime-endpoint unix://{{ kubesalt.containerd.socket }} info
    - unless: {{ paths.bin_dir }}/crictl --runtime-endpoint unix://{{ kubesalt.containerd.socket }} info
    - output_loglevel: debug
    - retry:
        attempts: 12
        interval: 5
    - require:
      - service: Run containerd
