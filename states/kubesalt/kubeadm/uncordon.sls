{#- Let pods back onto a node after its upgrade (the counterpart of kubesalt.kubeadm.drain,
    run on the first master for pillar kubesalt_op:node). #}
{%- from "kubesalt/map.jinja" import kubectl, op_node with context %}
{%- from "kubesalt/macros.jinja" import need_op_node with context %}
{%- set target = op_node %}
{{- need_op_node("node to uncordon") }}

Uncordon {{ target }}:
  cmd.run:
    - name: {{ kubectl }} uncordon {{ target }}
    {#- skipped only when the API answers that the node is schedulable: right after its
        upgrade the first master's API server restarts, and the endpoint answers again once
        consul's health check passes (hence the retry too) #}
    - unless: {{ ("unschedulable=$(" ~ kubectl ~ " get node " ~ target
                  ~ " -o jsonpath='{.spec.unschedulable}') && [ \"$unschedulable\" != true ]")
                 | yaml_dquote }}
    - retry:
        attempts: 12
        interval: 5
