{#- Provision a cluster: one block per stage of the operation, rendered from the plan
    (kubesalt.master.plan) that the controller passes as pillar `kubesalt_operation`. The same
    stage names are what `salt-run cluster.status` shows.

    Each stage records its start, applies its SLS to its nodes, and records its end; a failing
    stage stops the run (failhard), and the controller records which node failed and why.
    Stages run strictly in order through `require` on the previous stage; no step uses
    `parallel: True`, which can break requisite order (saltstack/salt#59959). #}
{%- set op = pillar['kubesalt_operation'] %}
{%- set previous = [] %}
{%- for stage in op['stages'] if stage['name'] != 'ready' %}

Start stage {{ stage['name'] }}:
  salt.runner:
    - name: operation.stage_started
    - kwarg:
        operation: {{ op['id'] }}
        stage: {{ stage['name'] }}
  {%- if previous %}
    - require:
      - salt: Finish stage {{ previous[-1] }}
  {%- endif %}

  {%- if stage['sls'] %}

Run stage {{ stage['name'] }}:
  salt.state:
    - tgt: {{ stage['nodes'] | join(',') }}
    - tgt_type: list
    - sls: {{ stage['sls'] }}
    - timeout: {{ stage['timeout'] }}
    - failhard: True
    {#- a stage interrupted by a controller restart may still be running there #}
    - queue: True
    {%- if not stage['parallel'] %}
    - batch: 1
    {%- endif %}
    - require:
      - salt: Start stage {{ stage['name'] }}
  {%- endif %}

Finish stage {{ stage['name'] }}:
  salt.runner:
    - name: operation.stage_finished
    - kwarg:
        operation: {{ op['id'] }}
        stage: {{ stage['name'] }}
    - require:
      - salt: {{ 'Run' if stage['sls'] else 'Start' }} stage {{ stage['name'] }}
  {%- do previous.append(stage['name']) %}
{%- endfor %}
