{#- Undo what the provisioning states installed on this node, for cluster.reset and node
    removal: kubeadm reset, stop and remove the services, binaries, configuration and data.
    Swap stays off and the fstab entries stay commented: turning swap back on is the site's
    decision. Safe to run on a node that was never (or only partly) provisioned. #}
{%- from "kubesalt/map.jinja" import kubesalt, paths, recursors with context %}
{%- set services = ["kubelet", "etcd", "consul", "containerd"] %}

Reset kubeadm on this node:
  cmd.run:
    - name: {{ paths.bin_dir }}/kubeadm reset --force --cri-socket unix://{{ kubesalt.containerd.socket }}
    - onlyif: test -x {{ paths.bin_dir }}/kubeadm && test -d {{ paths.kubernetes_dir }}
    - output_loglevel: quiet
    - hide_output: True

{%- for service in services %}

Stop {{ service }}:
  service.dead:
    - name: {{ service }}
    - enable: False
    - onlyif: test -e {{ paths.systemd_dir }}/{{ service }}.service
    - require:
      - cmd: Reset kubeadm on this node
{%- endfor %}

{%- set removed = [
      paths.kubernetes_dir, "/var/lib/kubelet", kubesalt.etcd.data_dir, kubesalt.etcd.pki_dir,
      kubesalt.consul.data_dir, kubesalt.consul.config_dir, paths.config_dir,
      paths.cache_dir, paths.cni_conf_dir, paths.cni_bin_dir, "/etc/containerd",
      "/etc/crictl.yaml", kubesalt.os.modules_load_file, kubesalt.os.sysctl_file,
      kubesalt.trust_store.anchor, paths.sbin_dir ~ "/runc",
      paths.systemd_dir ~ "/kubelet.service.d", paths.systemd_dir ~ "/containerd.service.d"] %}
{%- for service in services %}
{%-   do removed.append(paths.systemd_dir ~ "/" ~ service ~ ".service") %}
{%- endfor %}
{%- for binary in ["kubeadm", "kubelet", "kubectl", "crictl", "etcd", "etcdctl", "consul"] %}
{%-   do removed.append(paths.bin_dir ~ "/" ~ binary) %}
{%- endfor %}
{%- for binary in ["containerd", "containerd-shim-runc-v2", "containerd-stress", "ctr"] %}
{%-   do removed.append(kubesalt.containerd.prefix ~ "/bin/" ~ binary) %}
{%- endfor %}

{%- for path in removed %}

Remove {{ path }}:
  file.absent:
    - name: {{ path }}
    - require:
    {%- for service in services %}
      - service: Stop {{ service }}
    {%- endfor %}
{%- endfor %}

Reload systemd after removing the units:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
    {%- for service in services %}
      - file: Remove {{ paths.systemd_dir }}/{{ service }}.service
    {%- endfor %}

Forget the proxy root CA:
  cmd.run:
    - name: {{ kubesalt.trust_store.update_cmd }}
    - onchanges:
      - file: Remove {{ kubesalt.trust_store.anchor }}

# The consul nameserver is gone: resolve through the nameservers consul forwarded to.
Resolve without consul:
  file.managed:
    - name: /etc/resolv.conf
    - follow_symlinks: False
    - mode: '0644'
    - onlyif: grep -q 'Managed by kubesalt' /etc/resolv.conf
    - contents: |
        # Written by kubesalt's reset: the nameservers the node had before provisioning.
      {%- for server in recursors[:3] %}
        nameserver {{ server }}
      {%- endfor %}
