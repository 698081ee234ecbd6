{#- Remove a master's etcd member before that master is reset, so the members that stay keep
    their quorum. Runs on a master that stays, for pillar kubesalt_op:node (members are named
    after their node, and only the member of exactly that name goes). Fails when the member
    list cannot be read. #}
{%- from "kubesalt/map.jinja" import etcdctl_cmd, op_node with context %}
{%- from "kubesalt/macros.jinja" import need_op_node with context %}
{{- need_op_node("etcd member to remove") }}

Remove etcd member {{ op_node }}:
  kubesalt_node.etcd_member_absent:
    - name: {{ op_node }}
    - etcdctl: {{ etcdctl_cmd | json }}
