{#- Undo kubesalt.containerd: containerd stopped and disabled, its configuration, unit,
    drop-ins and binaries removed, and runc. After kubeadm's clean (`kubeadm reset` removes
    the containers through CRI). Images and containers' state under /var/lib/containerd
    stay. #}
{%- from "kubesalt/map.jinja" import kubesalt, paths with context %}
{%- set containerd = kubesalt.containerd %}

include:
  - kubesalt.kubeadm.clean

Stop containerd:
  service.dead:
    - name: containerd
    - enable: False
    - onlyif: test -e {{ paths.systemd_dir }}/containerd.service
    - require:
      - cmd: Reset kubeadm on this node

{%- set removed = [containerd.config_dir, paths.sbin_dir ~ "/runc",
                   paths.systemd_dir ~ "/containerd.service.d",
                   paths.systemd_dir ~ "/containerd.service"] %}
{%- for binary in containerd.binaries %}
{%-   do removed.append(containerd.prefix ~ "/bin/" ~ binary) %}
{%- endfor %}
{%- for path in removed %}

Remove {{ path }}:
  file.absent:
    - name: {{ path }}
    - require:
      - service: Stop containerd
{%- endfor %}
