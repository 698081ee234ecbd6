{#- Undo what the provisioning states installed on this node, for cluster.reset and node
    removal: each component's clean.sls, in the reverse order of the provisioning plan
    (kubeadm reset and kubelet first, the operating system settings last), then what belongs
    to no component. Safe to run on a node that was never (or only partly) provisioned. #}
{%- from "kubesalt/map.jinja" import paths with context %}
{%- set services = ["kubelet", "etcd", "consul", "containerd"] %}

include:
  - kubesalt.kubeadm.clean
  - kubesalt.etcd.clean
  - kubesalt.consul.clean
  - kubesalt.containerd.clean
  - kubesalt.binaries.clean
  - kubesalt.os.clean

{#- Written by several stages: kubeadm's configuration, manifests, the proxy environment,
    the upgrade record; downloaded releases. #}
{%- for path in [paths.config_dir, paths.cache_dir] %}

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
