{#- Delete a removed node from Kubernetes, once it was drained and reset (kubeadm's order: a
    kubelet still running would register the node again). Runs on a master that stays, for
    pillar kubesalt_op:node. Nothing to do when the API answers that it does not know the
    node; an API server that does not answer is asked again (retry). #}
{%- from "kubesalt/map.jinja" import kubectl_cmd, op_node with context %}
{%- from "kubesalt/macros.jinja" import need_op_node with context %}
{{- need_op_node("node to delete") }}

Delete {{ op_node }} from Kubernetes:
  kubesalt_node.absent:
    - name: {{ op_node }}
    - kubectl: {{ kubectl_cmd | json }}
    - retry:
        attempts: 12
        interval: 5
