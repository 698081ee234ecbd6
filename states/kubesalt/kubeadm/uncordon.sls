{#- Let pods back onto a node after its upgrade (the counterpart of kubesalt.kubeadm.drain,
    run on the first master for pillar kubesalt_op:node). Nothing to do when the API answers
    that the node is schedulable. Right after the node's upgrade the first master's API server
    restarts, and the endpoint answers again once consul's health check passes: hence the
    retry. #}
{%- from "kubesalt/map.jinja" import kubectl_cmd, op_node with context %}
{%- from "kubesalt/macros.jinja" import need_op_node with context %}
{{- need_op_node("node to uncordon") }}

Uncordon {{ op_node }}:
  kubesalt_node.uncordoned:
    - name: {{ op_node }}
    - kubectl: {{ kubectl_cmd | json }}
    - retry:
        attempts: 12
        interval: 5
