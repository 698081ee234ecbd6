{#- Undo kubesalt.consul: the agent stopped and disabled, its data, configuration, unit and
    binary removed, and resolv.conf back to the nameservers consul forwarded to. After
    kubeadm's clean: `kubeadm reset` reaches the API server through consul's DNS. The
    consul user stays. #}
{%- from "kubesalt/map.jinja" import kubesalt, paths, recursors with context %}
{%- set consul = kubesalt.consul %}

include:
  - kubesalt.kubeadm.clean

Stop consul:
  service.dead:
    - name: consul
    - enable: False
    - onlyif: test -e {{ paths.systemd_dir }}/consul.service
    - require:
      - cmd: Reset kubeadm on this node

{%- for path in [consul.data_dir, consul.config_dir, paths.systemd_dir ~ "/consul.service",
                 paths.bin_dir ~ "/consul"] %}

Remove {{ path }}:
  file.absent:
    - name: {{ path }}
    - require:
      - service: Stop consul
{%- endfor %}

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
