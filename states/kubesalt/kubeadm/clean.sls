{#- Undo what kubeadm init/join did on this node: `kubeadm reset` (static pods, containers,
    iptables, CNI state), kubelet stopped and disabled, kubeadm's configuration and kubelet's
    data removed. The other components' clean.sls include this one and stop their services
    only after the kubeadm reset. Safe on a node that was never provisioned. #}
{%- from "kubesalt/map.jinja" import kubesalt, paths with context %}

Reset kubeadm on this node:
  cmd.run:
    - name: {{ paths.bin_dir }}/kubeadm reset --force --cri-socket unix://{{ kubesalt.containerd.socket }}
    - onlyif: test -x {{ paths.bin_dir }}/kubeadm && test -d {{ paths.kubernetes_dir }}
    - output_loglevel: quiet
    - hide_output: True

Stop kubelet:
  service.dead:
    - name: kubelet
    - enable: False
    - onlyif: test -e {{ paths.systemd_dir }}/kubelet.service
    - require:
      - cmd: Reset kubeadm on this node

{%- for path in [paths.kubernetes_dir, kubesalt.kubelet.data_dir] %}

Remove {{ path }}:
  file.absent:
    - name: {{ path }}
    - require:
      - service: Stop kubelet
{%- endfor %}
