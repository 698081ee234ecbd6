{#- Run an operation (provision, upgrade, reset, remove-node): one block per node stage of the
    operation, rendered from its plan (kubesalt.master.ops.plan) that the controller passes as
    pillar `kubesalt_operation`. The same stage names are what `salt-run cluster.status` shows;
    the stages that target the controller are done by the operation's executor afterwards.

    Each stage records its start, applies its SLS to its nodes, and records its end; a failing
    stage stops the run (failhard), and the controller records which node failed and why.
    A stage with `drain` takes its nodes one at a time: drained from the first master, the SLS,
    then uncordoned (kubeadm's upgrade procedure). The operation's `params` reach every node as
    pillar `kubesalt_op`.
    Stages run strictly in order through `require` on the previous step; no step uses
    `parallel: True`, which can break requisite order (saltstack/salt#59959).

    First, kubesalt's custom modules (salt://_modules, _states: the kubesalt_node decisions
    the day-2 SLS use) are synced to every node of the operation: `state.sls` does not sync
    them, only a highstate does. #}
{%- set op = pillar['kubesalt_operation'] %}
{%- set previous = [] %}
{%- set sync = "Sync kubesalt's modules to the operation's nodes" %}

{{ sync }}:
  salt.function:
    - name: saltutil.sync_all
    - tgt: {{ op['nodes'] | join(',') }}
    - tgt_type: list
    - timeout: 120
    - failhard: True

{%- macro apply(state_id, nodes, sls, stage, after, op_pillar) %}
{{ state_id }}:
  salt.state:
    - tgt: {{ nodes | join(',') }}
    - tgt_type: list
    - sls: {{ sls }}
    - timeout: {{ stage['timeout'] }}
    - failhard: True
    {#- a stage interrupted by a controller restart may still be running there #}
    - queue: True
    {%- if not stage['parallel'] %}
    - batch: 1
    {%- endif %}
    - pillar:
        kubesalt_op: {{ op_pillar | tojson }}
    - require:
      - salt: {{ after }}
{%- endmacro %}

{%- for stage in op['stages'] %}

Start stage {{ stage['name'] }}:
  salt.runner:
    - name: operation.stage_started
    - kwarg:
        operation: {{ op['id'] }}
        stage: {{ stage['name'] }}
    - require:
      - salt: {{ ("Finish stage " ~ previous[-1]) if previous else sync }}
  {%- set last = ['Start stage ' ~ stage['name']] %}

  {%- if stage['drain'] %}
    {%- for node in stage['nodes'] %}
      {%- set params = dict(op['params'], node=node) %}
{{ apply('Run stage ' ~ stage['name'] ~ ' (drain ' ~ node ~ ')', [op['drain_from']],
         'kubesalt.kubeadm.drain', stage, last[-1], params) }}
{{ apply('Run stage ' ~ stage['name'] ~ ' (on ' ~ node ~ ')', [node], stage['sls'], stage,
         'Run stage ' ~ stage['name'] ~ ' (drain ' ~ node ~ ')', params) }}
{{ apply('Run stage ' ~ stage['name'] ~ ' (uncordon ' ~ node ~ ')', [op['drain_from']],
         'kubesalt.kubeadm.uncordon', stage, 'Run stage ' ~ stage['name'] ~ ' (on ' ~ node ~ ')',
         params) }}
      {%- do last.append('Run stage ' ~ stage['name'] ~ ' (uncordon ' ~ node ~ ')') %}
    {%- endfor %}
  {%- else %}
{{ apply('Run stage ' ~ stage['name'], stage['nodes'], stage['sls'], stage, last[-1],
         op['params']) }}
    {%- do last.append('Run stage ' ~ stage['name']) %}
  {%- endif %}

Finish stage {{ stage['name'] }}:
  salt.runner:
    - name: operation.stage_finished
    - kwarg:
        operation: {{ op['id'] }}
        stage: {{ stage['name'] }}
    - require:
      - salt: {{ last[-1] }}
  {%- do previous.append(stage['name']) %}
{%- endfor %}
