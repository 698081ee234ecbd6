{#- Drain one node before it is upgraded or removed: pods are evicted (DaemonSet pods stay)
    and the node is cordoned. Runs on the first master, which has the admin kubeconfig; the
    node is pillar kubesalt_op:node, passed by the orchestration. A node Kubernetes does not
    know is left alone. #}
{%- from "kubesalt/map.jinja" import kubesalt, kubectl, op_node with context %}
{%- from "kubesalt/macros.jinja" import need_op_node with context %}
{%- set target = op_node %}
{{- need_op_node("node to drain") }}

Drain {{ target }}:
  cmd.run:
    - name: {{ kubectl }} drain {{ target }} --ignore-daemonsets --delete-emptydir-data --timeout={{ kubesalt.drain.timeout }}
    {#- skipped only when the API answers that it does not know the node #}
    - unless: {{ (kubectl ~ " get node " ~ target ~ " 2>&1 | grep -q NotFound") | yaml_dquote }}
    - retry:
        attempts: 12
        interval: 5
