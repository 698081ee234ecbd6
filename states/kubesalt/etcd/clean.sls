{#- Undo kubesalt.etcd: the member stopped and disabled, its data, certificates, unit and
    binaries removed. After kubeadm's clean: the API server uses this member until then.
    (Removing the member from the cluster first is kubesalt.etcd.remove_member, run from a
    master that stays.) #}
{%- from "kubesalt/map.jinja" import kubesalt, paths with context %}
{%- set etcd = kubesalt.etcd %}

include:
  - kubesalt.kubeadm.clean

Stop etcd:
  service.dead:
    - name: etcd
    - enable: False
    - onlyif: test -e {{ paths.systemd_dir }}/etcd.service
    - require:
      - cmd: Reset kubeadm on this node

{%- set removed = [etcd.data_dir, etcd.pki_dir, paths.systemd_dir ~ "/etcd.service"] %}
{%- for binary in etcd.binaries %}
{%-   do removed.append(paths.bin_dir ~ "/" ~ binary) %}
{%- endfor %}
{%- for path in removed %}

Remove {{ path }}:
  file.absent:
    - name: {{ path }}
    - require:
      - service: Stop etcd
{%- endfor %}
