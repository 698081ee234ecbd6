{#- Remove a master's etcd member before that master is reset, so the members that stay keep
    their quorum. Runs on a master that stays, for pillar kubesalt_op:node (members are named
    after their node). #}
{%- from "kubesalt/map.jinja" import kubesalt, node, paths with context %}
{%- set member = salt["pillar.get"]("kubesalt_op:node") %}
{%- if not member %}
{{- raise("pillar kubesalt_op:node names the etcd member to remove; the orchestration passes it") }}
{%- endif %}
{%- set etcd = kubesalt.etcd %}
{%- set etcdctl = paths.bin_dir ~ "/etcdctl --endpoints https://" ~ node.address ~ ":"
                  ~ etcd.client_port ~ " --cacert " ~ etcd.pki_dir ~ "/ca.crt --cert "
                  ~ etcd.pki_dir ~ "/server.crt --key " ~ etcd.pki_dir ~ "/server.key" %}
{#- `member list` prints "ID, started, NAME, peer URLs, client URLs, is learner" #}
{%- set member_id = etcdctl ~ " member list | awk -F', ' '$3 == \"" ~ member ~ "\" {print $1}'" %}

Remove etcd member {{ member }}:
  cmd.run:
    - name: {{ (etcdctl ~ ' member remove "$(' ~ member_id ~ ')"') | yaml_dquote }}
    - onlyif: {{ ('test -n "$(' ~ member_id ~ ')"') | yaml_dquote }}
