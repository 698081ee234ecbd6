{#- Remove kubesalt's node agent: the salt-minion running this very state, its unit and
    /opt/kubesalt, as `conjurer -d` would. It cannot remove itself while it runs, so a transient
    systemd timer does it a few seconds after this run returns its result to the controller;
    the transient units are collected when done. A customer's own salt-minion is not touched. #}
{%- from "kubesalt/map.jinja" import kubesalt, paths with context %}
{%- set agent = kubesalt.agent %}

Remove kubesalt's agent once this run has returned:
  cmd.run:
    - name: >-
        systemd-run --unit={{ agent.removal_unit }} --collect
        --on-active={{ agent.removal_delay }}
        /bin/sh -c 'systemctl disable --now {{ agent.unit }};
        rm -f {{ paths.systemd_dir }}/{{ agent.unit }};
        systemctl daemon-reload; systemctl reset-failed {{ agent.unit }};
        rm -rf {{ agent.home }}'
    - unless: systemctl is-active --quiet {{ agent.removal_unit }}.timer
