{#- Remove kubesalt's node agent: the salt-minion running this very state, its node tunnel
    when it has one, their units and /opt/kubesalt, as `conjurer -d` would. It cannot remove
    itself while it runs, so a transient systemd timer does it a few seconds after this run
    returns its result to the controller; the transient units are collected when done. The
    agent's processes are killed, not stopped: its unit's KillMode=process (Salt's own, so a
    minion restart spares running jobs) leaves its worker processes behind a stop, and a minion
    slow to stop kept talking to the controller after its key was deleted, which took it back
    as a pending key. One unit per systemctl call, so a unit that is not there (no tunnel)
    cannot fail the call for the other. A customer's own salt-minion is not touched. #}
{%- from "kubesalt/map.jinja" import kubesalt, paths with context %}
{%- set agent = kubesalt.agent %}

Remove kubesalt's agent once this run has returned:
  cmd.run:
    - name: >-
        systemd-run --unit={{ agent.removal_unit }} --collect
        --on-active={{ agent.removal_delay }}
        /bin/sh -c '
        {%- for unit in (agent.unit, agent.tunnel_unit) %}
        systemctl disable {{ unit }}; systemctl kill --signal=SIGKILL {{ unit }};
        systemctl stop {{ unit }}; rm -f {{ paths.systemd_dir }}/{{ unit }};
        {%- endfor %}
        systemctl daemon-reload;
        {%- for unit in (agent.unit, agent.tunnel_unit) %}
        systemctl reset-failed {{ unit }};
        {%- endfor %}
        rm -rf {{ agent.home }}'
    - unless: systemctl is-active --quiet {{ agent.removal_unit }}.timer
