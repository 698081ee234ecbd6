{#- containerd and runc from the controller's artifact store, configured the way kubeadm
    expects: systemd cgroup driver, the pause image of the cluster's Kubernetes minor, CNI
    from /opt/cni/bin. #}
{%- from "kubesalt/map.jinja" import kubesalt, artifacts, versions, paths, proxy_drop_ins
    with context %}
{%- from "kubesalt/macros.jinja" import need, proxy_drop_in with context %}
{{- need(["artifacts:containerd", "artifacts:runc"]) }}

{%- set tarball = paths.cache_dir ~ "/containerd-" ~ versions.containerd ~ ".tar.gz" %}
{%- set stamp = paths.cache_dir ~ "/containerd.installed" %}

Fetch the containerd release:
  file.managed:
    - name: {{ tarball }}
    - source: {{ artifacts.containerd.source }}
    - source_hash: sha256={{ artifacts.containerd.sha256 }}
    - mode: '0644'
    - makedirs: True
    - show_changes: False

# The release tarball holds bin/containerd, bin/containerd-shim-runc-v2, bin/ctr: extracting
# into the prefix (/usr/local) puts them in <prefix>/bin. tar replaces a running binary by
# unlinking it first; writing over it in place (archive.extracted) fails with "Text file busy"
# on an upgrade. The stamp records which release file the binaries came from, so a rerun with
# the same file changes nothing.
Install containerd {{ versions.containerd }}:
  cmd.run:
    - name: >-
        tar -xf {{ tarball }} -C {{ kubesalt.containerd.prefix }} --no-same-owner
        && echo {{ artifacts.containerd.sha256 }} > {{ stamp }}
    - unless: >-
        test -x {{ kubesalt.containerd.prefix }}/bin/containerd
        && grep -qx {{ artifacts.containerd.sha256 }} {{ stamp }}
    - require:
      - file: Fetch the containerd release

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

{{ proxy_drop_in("containerd") }}

# service.running reloads systemd itself when a unit changed (NeedDaemonReload).
Run containerd:
  service.running:
    - name: containerd
    - enable: True
    - watch:
      - cmd: Install containerd {{ versions.containerd }}
      - file: Install runc
      - file: Configure containerd
      - file: Install the containerd service
      - file: {{ proxy_drop_ins.containerd }}

Wait for containerd to serve CRI:
  cmd.run:
    - name: {{ paths.bin_dir }}/crictl --runtime-endpoint unix://{{ kubesalt.containerd.socket }} info
    - unless: {{ paths.bin_dir }}/crictl --runtime-endpoint unix://{{ kubesalt.containerd.socket }} info
    - output_loglevel: debug
    - retry:
        attempts: {{ kubesalt.containerd.cri_wait_attempts }}
        interval: {{ kubesalt.containerd.cri_wait_interval }}
    - require:
      - service: Run containerd
