{#- Undo kubesalt.binaries: the Kubernetes binaries, crictl and its configuration, the CNI
    plugins and configuration, kubelet's unit and drop-ins. After kubeadm's clean, which
    stops and disables kubelet. #}
{%- from "kubesalt/map.jinja" import kubesalt, paths with context %}

include:
  - kubesalt.kubeadm.clean

{%- set removed = [paths.cni_conf_dir, paths.cni_bin_dir, kubesalt.crictl.config_file,
                   paths.systemd_dir ~ "/kubelet.service.d",
                   paths.systemd_dir ~ "/kubelet.service"] %}
{%- for binary in kubesalt.binaries.kubernetes + ["crictl"] %}
{%-   do removed.append(paths.bin_dir ~ "/" ~ binary) %}
{%- endfor %}
{%- for path in removed %}

Remove {{ path }}:
  file.absent:
    - name: {{ path }}
    - require:
      - service: Stop kubelet
{%- endfor %}
