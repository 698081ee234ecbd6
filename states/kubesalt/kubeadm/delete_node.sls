{#- Delete a removed node from Kubernetes, once it was drained and reset (kubeadm's order: a
    kubelet still running would register the node again). Runs on a master that stays, for
    pillar kubesalt_op:node. #}
{%- from "kubesalt/map.jinja" import kubectl, op_node with context %}
{%- from "kubesalt/macros.jinja" import need_op_node with context %}
{%- set target = op_node %}
{{- need_op_node("node to delete") }}

Delete {{ target }} from Kubernetes:
  cmd.run:
    - name: {{ kubectl }} delete node {{ target }} --ignore-not-found
    {#- skipped only when the API answers that it does not know the node #}
    - unless: {{ (kubectl ~ " get node " ~ target ~ " 2>&1 | grep -q NotFound") | yaml_dquote }}
    - retry:
        attempts: 12
        interval: 5
