{#- Drain one node before it is upgraded or removed: pods are evicted (DaemonSet pods stay)
    and the node is cordoned. Runs on the first master, which has the admin kubeconfig; the
    node is pillar kubesalt_op:node, passed by the operation's executor. A node Kubernetes does not
    know is left alone; an API server that does not answer is asked again (retry). The
    decisions are the kubesalt_node modules' (modules/_modules, modules/_states). #}
{%- from "kubesalt/map.jinja" import kubesalt, kubectl_cmd, op_node with context %}
{%- from "kubesalt/macros.jinja" import need_op_node with context %}
{{- need_op_node("node to drain") }}

Drain {{ op_node }}:
  kubesalt_node.drained:
    - name: {{ op_node }}
    - kubectl: {{ kubectl_cmd | json }}
    - timeout: {{ kubesalt.drain.timeout }}
    - retry:
        attempts: 12
        interval: 5
