# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pgbouncer_stats
short_description: Read PgBouncer's admin console and assert pooling thresholds
version_added: 0.1.0
description:
  - Connects to the PgBouncer admin console and runs C(SHOW STATS), C(SHOW POOLS), C(SHOW CLIENTS),
    C(SHOW SERVERS) and C(SHOW DATABASES) (optionally C(SHOW USERS) and C(SHOW CONFIG)), and returns each
    as a list of dicts keyed by column name.
  - Columns are read by name, so the differing column sets of PgBouncer releases (for example 1.18 on
    Debian 12 and 1.24 on Debian 13) are returned as each release reports them.
  - Computes per-database figures (connection reuse ratio, pool utilisation, waiting clients, longest
    wait, average query, transaction and wait times) and, when O(thresholds) is given, fails with one
    message that lists every violated threshold with its database, measured value and limit.
  - The admin console only speaks the simple query protocol and drops the connection on any statement
    it does not know, C(BEGIN) included; the module therefore uses autocommit and only runs C(SHOW).
  - Only reads; never changes anything.
author:
  - ywmessaging.scaling contributors (@ywmessaging)
requirements:
  - psycopg2 (or psycopg2-binary) on the host that runs the module
options:
  login_host:
    description:
      - Host name or IP address of PgBouncer.
      - A value that starts with C(/) is the directory of PgBouncer's unix socket (its C(unix_socket_dir)).
      - When not set, libpq's default unix socket directory is used.
    type: str
    aliases: [host]
  port:
    description:
      - PgBouncer's C(listen_port). Also names the unix socket file (C(.s.PGSQL.<port>)).
    type: int
    default: 6432
    aliases: [login_port]
  login_user:
    description:
      - User to log in as. It must be listed in PgBouncer's C(admin_users) or C(stats_users);
        C(stats_users) is enough for everything this module runs.
    type: str
    default: pgbouncer
    aliases: [user]
  login_password:
    description:
      - Password of O(login_user), as in PgBouncer's C(auth_file) or C(auth_query) source.
    type: str
    aliases: [password]
  db:
    description:
      - Name of the admin console database.
    type: str
    default: pgbouncer
    aliases: [login_db]
  connect_timeout:
    description:
      - Seconds to wait for the connection to be made.
    type: int
    default: 10
  ssl_mode:
    description:
      - libpq C(sslmode) for the connection to PgBouncer (its C(client_tls_*) settings).
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - CA certificate file to verify PgBouncer's certificate with (libpq C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  show:
    description:
      - Which C(SHOW) outputs to return. Each becomes a result key of the same name.
      - C(stats), C(pools), C(databases) and C(users) are always read for the derived figures; this
        option only decides what is returned.
    type: list
    elements: str
    choices: [stats, pools, clients, servers, databases, users, config]
    default: [stats, pools, clients, servers, databases]
  include_admin_db:
    description:
      - Also compute figures, and apply thresholds, for PgBouncer's own C(pgbouncer) admin database.
      - Its rows stay in the raw C(SHOW) output either way.
    type: bool
    default: false
  thresholds:
    description:
      - Limits to assert. Each limit applies to every database in RV(derived) (or to those in
        O(thresholds.databases)); pool utilisation applies to every pool of those databases.
      - When any limit is crossed the module fails with one message listing every violation; all
        data is still returned. Otherwise RV(checks) lists each check with its measured value.
      - A check whose figure cannot be measured (for example the reuse ratio of a database that has
        served no transaction yet) is reported as C(skipped), not as a violation.
    type: dict
    suboptions:
      min_reuse_ratio:
        description:
          - Lowest acceptable connection reuse ratio, in percent (see RV(derived.reuse_ratio)).
        type: float
      max_avg_query_time_ms:
        description:
          - Highest acceptable average query duration in the last C(stats_period), in milliseconds.
        type: float
      max_avg_xact_time_ms:
        description:
          - Highest acceptable average transaction duration in the last C(stats_period), in milliseconds.
        type: float
      max_avg_wait_time_ms:
        description:
          - Highest acceptable average time a client waited for a server connection in the last
            C(stats_period), in milliseconds (see RV(derived.avg_wait_time_ms)).
        type: float
      max_pool_utilization:
        description:
          - Highest acceptable pool utilisation, in percent, for every pool (see RV(derived.pools.utilization)).
        type: float
      max_clients_waiting:
        description:
          - Highest acceptable number of clients queued for a server connection, per database.
        type: int
      max_maxwait_ms:
        description:
          - Highest acceptable wait of the oldest queued client, in milliseconds, per database.
        type: float
      databases:
        description:
          - Apply the limits to these databases (PgBouncer database entry names) only.
          - A name PgBouncer does not know is reported as a violation.
          - Default is every database except the admin database (see O(include_admin_db)).
        type: list
        elements: str
extends_documentation_fragment:
  - ywmessaging.scaling.read_only
notes:
  - B(Connection reuse ratio.) PgBouncer exists so that many client transactions share few PostgreSQL
    connections. The ratio is the share of transactions that did not need a new server connection,
    C(100 * (1 - server_connections / transactions)), floored at 0, where C(transactions) is
    C(total_xact_count) from C(SHOW STATS) (since PgBouncer started) and C(server_connections) is the
    number of server connections open now (the sum of the C(sv_*) state columns of C(SHOW POOLS), which
    is also the number of rows of C(SHOW SERVERS)).
  - No PgBouncer release reports how many server connections it has opened since start, so the open
    connections stand in for "opened". This is exact while no server connection has been closed; when
    connections are recycled (C(server_lifetime), C(server_idle_timeout), server errors, C(RECONNECT))
    the real number opened is higher and the reported ratio is an upper bound. Measured on PgBouncer 1.18
    with C(server_lifetime=1) (an extreme churn) under pgbench, PostgreSQL counted 191 sessions opened for
    131981 transactions (true ratio 99.86) while 14 were open at the end (reported 99.99); with the default
    lifetime the 20 connections open were exactly the 20 opened (C(pg_stat_database.sessions)).
  - C(total_server_assignment_count) (PgBouncer 1.23 and later) is B(not) used for the ratio. It counts
    how often a server connection was handed to a client, which in transaction pooling happens once per
    transaction (measured on 1.24.1 under pgbench, 148676 assignments for 148698 transactions), so it
    says nothing about how many connections were opened. It is returned as RV(derived.server_assignments).
  - B(Pool utilisation) is the server connections busy with a client (C(sv_active), plus
    C(sv_active_cancel) and C(sv_being_canceled) where reported) divided by the pool's size, in percent,
    at the moment of the query. The pool size is the user's C(pool_size) from C(SHOW USERS) when the user
    has one (PgBouncer 1.24+), else the database's C(pool_size) from C(SHOW DATABASES) (which shows
    C(default_pool_size) when the database sets none). The reserve pool can push it above 100.
    PgBouncer 1.24.1 repeats the previous user's C(pool_size) for following users in C(SHOW USERS) (fixed
    later upstream); with per-user pool sizes on that release, check RV(derived.pools.pool_size_source).
  - B(Average wait time.) From PgBouncer 1.23 C(avg_wait_time) is the mean wait per server assignment.
    Before 1.23 it is microseconds of waiting accumulated per second, not a per-client figure; the module
    divides it by C(avg_xact_count) to get the mean wait per transaction, so the figure means the same on
    both (in transaction pooling an assignment is a transaction).
  - Averages (C(avg_*)) cover PgBouncer's last C(stats_period) (60 seconds by default) and are 0 when that
    period had no traffic. Counts of clients and servers are a snapshot.
  - Numbers come back as integers or floats. Text values that are plain decimal numbers (such as most
    C(SHOW CONFIG) values, or C(SHOW USERS) C(pool_size) on 1.24) become numbers too, except in columns
    that name things (databases, users, hosts, states); values with a leading zero (C(0777)),
    timestamps and addresses stay strings.
seealso:
  - name: PgBouncer usage (SHOW commands)
    description: Meaning of every column of the SHOW commands.
    link: https://www.pgbouncer.org/usage.html
"""

EXAMPLES = r"""
- name: Read PgBouncer statistics over the local unix socket
  ywmessaging.scaling.pgbouncer_stats:
    login_host: /var/run/postgresql
    login_user: pgbouncer_stats
    login_password: "{{ vault_pgbouncer_stats_password }}"
  register: pgb

- name: Show the reuse ratio of the application database
  ansible.builtin.debug:
    msg: "reuse {{ pgb.derived.app.reuse_ratio }} %, waiting {{ pgb.derived.app.clients_waiting }}"

- name: Assert the runbook's pooling targets (fails listing every violation)
  ywmessaging.scaling.pgbouncer_stats:
    login_host: 127.0.0.1
    port: 6432
    login_user: pgbouncer
    login_password: "{{ vault_pgbouncer_admin_password }}"
    show: [stats, pools]
    thresholds:
      databases: [connect_yw_production]
      min_reuse_ratio: 90
      max_avg_query_time_ms: 50
      max_avg_wait_time_ms: 10
      max_pool_utilization: 90
      max_clients_waiting: 0

- name: Include the configuration, e.g. to compare default_pool_size with PostgreSQL's max_connections
  ywmessaging.scaling.pgbouncer_stats:
    login_host: pgbouncer.internal
    login_password: "{{ vault_pgbouncer_admin_password }}"
    show: [databases, config]
  register: pgb_config
"""

RETURN = r"""
version:
  description: PgBouncer's version string, from C(SHOW VERSION).
  returned: always
  type: str
  sample: PgBouncer 1.18.0
stats:
  description:
    - C(SHOW STATS), one dict per database. Times are microseconds, as PgBouncer reports them.
    - Columns depend on the PgBouncer release, e.g. C(total_server_assignment_count) and the
      prepared statement counters only exist from 1.23 / 1.21.
  returned: when C(stats) is in O(show)
  type: list
  elements: dict
  sample:
    - database: app
      total_xact_count: 310150
      total_query_count: 310150
      total_received: 19471201
      total_sent: 20470715
      total_xact_time: 286276036
      total_query_time: 286276036
      total_wait_time: 93476410
      avg_xact_count: 19246
      avg_query_count: 19246
      avg_recv: 1208418
      avg_sent: 1270554
      avg_xact_time: 919
      avg_query_time: 919
      avg_wait_time: 5734346
pools:
  description: C(SHOW POOLS), one dict per (database, user) pool.
  returned: when C(pools) is in O(show)
  type: list
  elements: dict
  sample:
    - database: app
      user: app_user
      cl_active: 46
      cl_waiting: 4
      cl_active_cancel_req: 0
      cl_waiting_cancel_req: 0
      sv_active: 20
      sv_active_cancel: 0
      sv_being_canceled: 0
      sv_idle: 0
      sv_used: 0
      sv_tested: 0
      sv_login: 0
      maxwait: 0
      maxwait_us: 0
      pool_mode: transaction
clients:
  description: C(SHOW CLIENTS), one dict per client connection. Timestamps stay strings.
  returned: when C(clients) is in O(show)
  type: list
  elements: dict
  sample:
    - type: C
      user: app_user
      database: app
      state: active
      addr: 127.0.0.1
      port: 45550
      local_addr: 127.0.0.1
      local_port: 6432
      connect_time: "2026-11-28 13:41:41 UTC"
      request_time: "2026-11-28 13:41:46 UTC"
      wait: 0
      wait_us: 0
      close_needed: 0
      ptr: "0x55f0d8de5a20"
      link: ""
      remote_pid: 0
      tls: ""
      application_name: pgbench
servers:
  description: C(SHOW SERVERS), one dict per server connection.
  returned: when C(servers) is in O(show)
  type: list
  elements: dict
  sample:
    - type: S
      user: app_user
      database: app
      state: idle
      addr: 127.0.0.1
      port: 5432
      connect_time: "2026-11-28 13:41:41 UTC"
      remote_pid: 13470
databases:
  description: C(SHOW DATABASES), one dict per configured database entry.
  returned: when C(databases) is in O(show)
  type: list
  elements: dict
  sample:
    - name: app
      host: 127.0.0.1
      port: 5432
      database: app
      force_user: null
      pool_size: 20
      min_pool_size: 0
      reserve_pool: 0
      pool_mode: null
      max_connections: 0
      current_connections: 20
      paused: 0
      disabled: 0
users:
  description: C(SHOW USERS). On 1.18 only C(name) and C(pool_mode); 1.24 adds pool sizes and connection counts.
  returned: when C(users) is in O(show)
  type: list
  elements: dict
  sample:
    - name: app_user
      pool_mode: null
config:
  description: C(SHOW CONFIG), one dict per setting with C(key), C(value), C(default) and C(changeable).
  returned: when C(config) is in O(show)
  type: list
  elements: dict
  sample:
    - key: default_pool_size
      value: 30
      default: 20
      changeable: "yes"
derived:
  description:
    - Figures per database, keyed by PgBouncer database entry name. The admin database is left out
      unless O(include_admin_db) is set. A figure PgBouncer's release does not report is null.
  returned: always
  type: dict
  contains:
    transactions:
      description: C(total_xact_count) since PgBouncer started.
      type: int
    queries:
      description: C(total_query_count) since PgBouncer started.
      type: int
    server_assignments:
      description: C(total_server_assignment_count) (PgBouncer 1.23+), null before. Not used for the reuse ratio.
      type: int
    server_connections:
      description: Server connections open now, in any state, summed over the database's pools.
      type: int
    server_connections_active:
      description: Server connections busy with a client now (C(sv_active), C(sv_active_cancel), C(sv_being_canceled)).
      type: int
    reuse_ratio:
      description:
        - Percent of transactions served without opening a new server connection,
          C(100 * (1 - server_connections / transactions)), floored at 0; null before the first transaction.
        - An upper bound when server connections have been closed and reopened (see the notes).
      type: float
      sample: 99.99
    clients_active:
      description: Client connections linked to a server or idle (C(cl_active)), summed over pools.
      type: int
    clients_waiting:
      description: Clients that sent a query and wait for a server connection (C(cl_waiting)), summed over pools.
      type: int
    maxwait_ms:
      description: How long the oldest waiting client of any pool has waited (C(maxwait) + C(maxwait_us)), in ms.
      type: float
    avg_query_time_ms:
      description: C(avg_query_time) in milliseconds (last C(stats_period)).
      type: float
    avg_xact_time_ms:
      description: C(avg_xact_time) in milliseconds (last C(stats_period)).
      type: float
    avg_wait_time_ms:
      description: Mean wait for a server connection per assignment (per transaction before 1.23), in ms.
      type: float
    pool_utilization:
      description: Highest RV(derived.pools.utilization) among the database's pools, in percent.
      type: float
    pools:
      description: One entry per (database, user) pool.
      type: list
      elements: dict
      contains:
        user:
          description: Pool user.
          type: str
        pool_mode:
          description: Pool mode in use.
          type: str
        pool_size:
          description: Pool size in force for this pool.
          type: int
        pool_size_source:
          description: C(user) (from C(SHOW USERS), 1.24+) or C(database) (from C(SHOW DATABASES)).
          type: str
        server_connections:
          description: Server connections of this pool, in any state.
          type: int
        server_connections_active:
          description: Server connections of this pool busy with a client.
          type: int
        clients_active:
          description: C(cl_active) of this pool.
          type: int
        clients_waiting:
          description: C(cl_waiting) of this pool.
          type: int
        maxwait_ms:
          description: Wait of this pool's oldest waiting client, in ms.
          type: float
        utilization:
          description: 100 * RV(derived.pools.server_connections_active) / RV(derived.pools.pool_size).
          type: float
  sample:
    app:
      transactions: 310150
      queries: 310150
      server_assignments: null
      server_connections: 20
      server_connections_active: 0
      reuse_ratio: 99.99
      clients_active: 0
      clients_waiting: 0
      maxwait_ms: 0.0
      avg_query_time_ms: 0.919
      avg_xact_time_ms: 0.919
      avg_wait_time_ms: 0.298
      pool_utilization: 0.0
      pools:
        - user: app_user
          pool_mode: transaction
          pool_size: 20
          pool_size_source: database
          server_connections: 20
          server_connections_active: 0
          clients_active: 0
          clients_waiting: 0
          maxwait_ms: 0.0
          utilization: 0.0
checks:
  description:
    - One entry per evaluated threshold (per database, and per pool for O(thresholds.max_pool_utilization)).
    - C(status) is C(passed), C(failed) or C(skipped) (nothing to measure).
  returned: when O(thresholds) is set
  type: list
  elements: dict
  sample:
    - name: min_reuse_ratio
      database: app
      measured: 99.99
      limit: 90.0
      comparison: ">="
      status: passed
    - name: max_pool_utilization
      database: app
      user: app_user
      measured: 100.0
      limit: 90.0
      comparison: "<="
      status: failed
msg:
  description: What happened; on failure every violated threshold, with database, measured value and limit.
  returned: always
  type: str
  sample: >-
    1 PgBouncer threshold violated: max_pool_utilization (database=app, user=app_user):
    measured 100.0, limit <= 90.0
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

from ansible_collections.ywmessaging.scaling.plugins.module_utils import pgbouncer as pgb  # noqa: E402


class PgBouncerStats(object):
    """Reads the admin console once, derives figures and judges thresholds."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = dict(changed=False, version=None, derived={}, msg="")

    def fail(self, msg):
        self.result["msg"] = msg
        self.module.fail_json(**self.result)

    def read_console(self):
        conn, err = pgb.connect(self.params)
        if err:
            self.fail(err)
        wanted = list(self.params["show"])
        fetch = wanted + [w for w in pgb.DERIVATION_SOURCES if w not in wanted]
        data = {}
        try:
            cursor = conn.cursor()
            self.result["version"] = pgb.fetch_version(cursor)
            for what in fetch:
                data[what] = pgb.fetch_show(cursor, what)
        except Exception as e:  # psycopg2.Error: the console refused or dropped us
            self.fail("Reading %s failed: %s" % (pgb.describe_target(self.params), str(e).strip()))
        finally:
            conn.close()
        for what in wanted:
            self.result[what] = data[what]
        return data

    def run(self):
        data = self.read_console()
        derived = pgb.derive_figures(
            data["stats"], data["pools"], data["databases"], data["users"], self.params["include_admin_db"]
        )
        self.result["derived"] = derived
        limits = self.params["thresholds"]
        if not limits:
            self.result["msg"] = "Read PgBouncer statistics for %d database(s)" % len(derived)
            self.module.exit_json(**self.result)
        checks, failure = pgb.evaluate_thresholds(derived, limits)
        self.result["checks"] = checks
        if failure:
            self.fail(failure)
        passed = len([c for c in checks if c["status"] == "passed"])
        self.result["msg"] = "%d PgBouncer threshold check(s) passed, %d skipped" % (passed, len(checks) - passed)
        self.module.exit_json(**self.result)


def argument_spec():
    spec = pgb.connection_argument_spec()
    threshold_options = dict((name, dict(type="float")) for name in pgb.THRESHOLD_OPTIONS)
    threshold_options["max_clients_waiting"] = dict(type="int")
    threshold_options["databases"] = dict(type="list", elements="str")
    spec.update(
        show=dict(type="list", elements="str", default=list(pgb.DEFAULT_SHOW), choices=list(pgb.SHOW_COMMANDS)),
        include_admin_db=dict(type="bool", default=False),
        thresholds=dict(type="dict", options=threshold_options),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not pgb.HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=pgb.PSYCOPG2_IMPORT_ERROR)
    PgBouncerStats(module).run()


if __name__ == "__main__":
    main()
