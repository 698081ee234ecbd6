{#- Upgrade this node to the cluster's Kubernetes version (pillar kubesalt:cluster:k8s_version,
    which cluster.upgrade sets), in kubeadm's order: the new kubeadm, then `kubeadm upgrade
    apply` on the first master or `kubeadm upgrade node` on the others, then kubelet restarted
    on the new binary. containerd (and etcd on masters) come from the same row of the version
    matrix. The operation's executor drains the node around this. #}
{%- from "kubesalt/map.jinja" import kubesalt, cluster, versions, paths, is_master,
                                     is_first_master with context %}
{%- set record = kubesalt.upgrade.record_file %}
{%- set done = "grep -qx 'kubernetes: " ~ cluster.k8s_version ~ "' " ~ record %}

include:
  - kubesalt.binaries
  - kubesalt.containerd
{%- if is_master %}
  - kubesalt.etcd
{%- endif %}

Upgrade Kubernetes on this node to v{{ cluster.k8s_version }}:
  cmd.run:
{%- if is_first_master %}
    - name: {{ paths.bin_dir }}/kubeadm upgrade apply v{{ cluster.k8s_version }} --yes
{%- else %}
    - name: {{ paths.bin_dir }}/kubeadm upgrade node
{%- endif %}
    - unless: {{ done | yaml_dquote }}
    - require:
      - file: Install kubeadm
      - sls: kubesalt.containerd
{%- if is_master %}
      - sls: kubesalt.etcd
{%- endif %}

{#- Restarted until this node's upgrade is recorded, not on a change of the binary: a resumed
    upgrade finds the new binary installed by the failed run while the old one still runs. #}
Restart kubelet on v{{ cluster.k8s_version }}:
  cmd.run:
    - name: systemctl restart kubelet
    - unless: {{ done | yaml_dquote }}
    - require:
      - file: Install kubelet
      - cmd: Upgrade Kubernetes on this node to v{{ cluster.k8s_version }}

Record what this node was upgraded to:
  file.managed:
    - name: {{ record }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        kubernetes: {{ cluster.k8s_version }}
        containerd: {{ versions.containerd }}
{%- if is_master %}
        etcd: {{ versions.etcd }}
{%- endif %}
    - require:
      - cmd: Restart kubelet on v{{ cluster.k8s_version }}
