{#- Remove a master's etcd member before that master is reset, so the members that stay keep
    their quorum. Runs on a master that stays, for pillar kubesalt_op:node (members are named
    after their node). #}
{%- from "kubesalt/map.jinja" import etcdctl, op_node with context %}
{%- from "kubesalt/macros.jinja" import need_op_node with context %}
{%- set member = op_node %}
{{- need_op_node("etcd member to remove") }}
{#- `member list` prints "ID, started, NAME, peer URLs, client URLs, is learner" #}
{%- set member_id = etcdctl ~ " member list | awk -F', ' '$3 == \"" ~ member ~ "\" {print $1}'" %}

Remove etcd member {{ member }}:
  cmd.run:
    - name: {{ (etcdctl ~ ' member remove "$(' ~ member_id ~ ')"') | yaml_dquote }}
    - onlyif: {{ ('test -n "$(' ~ member_id ~ ')"') | yaml_dquote }}
