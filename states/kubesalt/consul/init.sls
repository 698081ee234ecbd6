{#- consul on every node: servers on the masters (bootstrap_expect = number of masters),
    clients elsewhere. The masters register the `control-plane` service with a TCP check on
    the API server, so control-plane.service.consul resolves to the healthy API servers:
    that name is kubeadm's controlPlaneEndpoint. consul answers DNS on port 53 of the node's
    own address, first in resolv.conf (see states/README.md, "DNS"). #}
{%- from "kubesalt/map.jinja" import kubesalt, cluster, node, artifacts, paths, is_master,
                                     master_addresses, recursors with context %}
{%- from "kubesalt/macros.jinja" import need with context %}
{{- need(["artifacts:consul", "node:address", "node:id", "cluster:name"]) }}
{%- set consul = kubesalt.consul %}

Create the consul user:
  user.present:
    - name: {{ consul.user }}
    - system: True
    - home: {{ consul.data_dir }}
    - createhome: False
    - usergroup: True
    - shell: {{ kubesalt.nologin_shell }}

Create the consul data directory:
  file.directory:
    - name: {{ consul.data_dir }}
    - user: {{ consul.user }}
    - group: {{ consul.user }}
    - mode: '0750'
    - makedirs: True
    - require:
      - user: Create the consul user

Install consul:
  file.managed:
    - name: {{ paths.bin_dir }}/consul
    - source: {{ artifacts.consul.source }}
    - source_hash: sha256={{ artifacts.consul.sha256 }}
    - mode: '0755'
    - makedirs: True
    - show_changes: False

Configure the consul agent:
  file.serialize:
    - name: {{ consul.config_dir }}/kubesalt.json
    - serializer: json
    - user: root
    - group: {{ consul.user }}
    - mode: '0640'
    - makedirs: True
    - require:
      - user: Create the consul user
    - dataset:
        datacenter: {{ cluster.name }}
        node_name: {{ node.id }}
        data_dir: {{ consul.data_dir }}
        bind_addr: {{ node.address }}
        advertise_addr: {{ node.address }}
        client_addr: 127.0.0.1
        addresses:
          dns: {{ node.address }}
        ports:
          dns: {{ consul.dns_port }}
          http: {{ consul.http_port }}
        recursors: {{ recursors | json }}
        server: {{ is_master | json }}
      {%- if is_master %}
        bootstrap_expect: {{ master_addresses | length }}
      {%- endif %}
        retry_join: {{ master_addresses | json }}
        leave_on_terminate: false
        log_level: INFO
      {%- if is_master %}
        services:
          - name: {{ consul.control_plane_service }}
            id: {{ consul.control_plane_service }}-{{ node.id }}
            address: {{ node.address }}
            port: {{ kubesalt.kubeadm.api_port }}
            check:
              id: {{ consul.control_plane_service }}-{{ node.id }}-tcp
              name: API server accepts connections
              tcp: {{ node.address }}:{{ kubesalt.kubeadm.api_port }}
              interval: {{ consul.check_interval }}
              timeout: 2s
      {%- endif %}

Install the consul service:
  file.managed:
    - name: {{ paths.systemd_dir }}/consul.service
    - source: salt://kubesalt/consul/files/consul.service.j2
    - template: jinja
    - mode: '0644'

Run consul:
  service.running:
    - name: consul
    - enable: True
    - watch:
      - file: Install consul
      - file: Configure the consul agent
      - file: Install the consul service
    - require:
      - file: Create the consul data directory

# Servers need a quorum of masters to elect a leader; until then consul DNS answers nothing.
# Every node waits here, so the stage finishes only when the catalogue works.
Wait for the consul servers to elect a leader:
  http.wait_for_successful_query:
    - name: http://127.0.0.1:{{ consul.http_port }}/v1/status/leader
    - match: ':8300"'
    - match_type: string
    - wait_for: {{ consul.leader_wait_seconds }}
    - request_interval: {{ consul.leader_poll_seconds }}
    - require:
      - service: Run consul

# Written only now, with consul answering: earlier, a nameserver that does not answer yet
# would stall every lookup for the resolver timeout.
Resolve through the node's consul agent:
  file.managed:
    - name: /etc/resolv.conf
    - source: salt://kubesalt/consul/files/resolv.conf.j2
    - template: jinja
    - mode: '0644'
    # Replace systemd-resolved's symlink by a file instead of writing through it into /run,
    # where resolved would overwrite it.
    - follow_symlinks: False
    - require:
      - http: Wait for the consul servers to elect a leader
