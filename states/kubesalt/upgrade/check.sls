{#- Before any node changes: the target release's kubeadm (fetched beside, not installed)
    checks on the first master that the cluster can take it (`kubeadm upgrade plan`: health,
    version skew, one minor at a time). #}
{%- from "kubesalt/map.jinja" import kubesalt, cluster, artifacts, paths with context %}
{%- from "kubesalt/macros.jinja" import need with context %}
{{- need(["artifacts:kubeadm"]) }}
{%- set kubeadm = paths.cache_dir ~ "/kubeadm-" ~ cluster.k8s_version %}

Fetch kubeadm {{ cluster.k8s_version }} for the upgrade check:
  file.managed:
    - name: {{ kubeadm }}
    - source: {{ artifacts.kubeadm.source }}
    - source_hash: sha256={{ artifacts.kubeadm.sha256 }}
    - mode: '0755'
    - makedirs: True
    - show_changes: False

Check the cluster can be upgraded to v{{ cluster.k8s_version }}:
  cmd.run:
    - name: {{ kubeadm }} upgrade plan v{{ cluster.k8s_version }}
    {#- a resumed upgrade whose first master runs the target already has nothing to check #}
    - unless: {{ ("grep -qx 'kubernetes: " ~ cluster.k8s_version ~ "' "
                  ~ kubesalt.upgrade.record_file) | yaml_dquote }}
    - require:
      - file: Fetch kubeadm {{ cluster.k8s_version }} for the upgrade check
