/**
 * Schema migrations, applied in order; PRAGMA user_version records how many
 * have run. Never edit a released migration: add a new one.
 */
export const MIGRATIONS: readonly string[] = [
  `
  -- The paper's ids table: every id ever issued, so none is ever reused.
  CREATE TABLE ids (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('vol', 'snap')),
    created_at TEXT NOT NULL
  );

  CREATE TABLE volumes (
    volume_id TEXT PRIMARY KEY REFERENCES ids(id),
    owner TEXT NOT NULL,
    size_gib INTEGER NOT NULL CHECK (size_gib > 0),
    comment TEXT NOT NULL DEFAULT '',
    snapshot_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('creating', 'available', 'in-use', 'deleting', 'error')),
    status_message TEXT,
    delegate TEXT NOT NULL,
    create_time TEXT NOT NULL,
    create_attempts INTEGER NOT NULL DEFAULT 1
  );
  CREATE INDEX volumes_owner ON volumes(owner);
  CREATE INDEX volumes_busy ON volumes(status) WHERE status IN ('creating', 'deleting');
  CREATE INDEX volumes_snapshot ON volumes(snapshot_id) WHERE snapshot_id IS NOT NULL;

  CREATE TABLE snapshots (
    snapshot_id TEXT PRIMARY KEY REFERENCES ids(id),
    owner TEXT NOT NULL,
    volume_id TEXT NOT NULL,
    size_gib INTEGER NOT NULL CHECK (size_gib > 0),
    comment TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'deleting', 'error')),
    status_message TEXT,
    progress INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    delegate TEXT NOT NULL,
    create_time TEXT NOT NULL,
    create_attempts INTEGER NOT NULL DEFAULT 1
  );
  CREATE INDEX snapshots_owner ON snapshots(owner);
  CREATE INDEX snapshots_volume ON snapshots(volume_id);

  CREATE TABLE attachments (
    volume_id TEXT NOT NULL REFERENCES volumes(volume_id),
    vmm_host TEXT NOT NULL,
    vm_id TEXT NOT NULL,
    device TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('r', 'w')),
    status TEXT NOT NULL CHECK (status IN ('attaching', 'attached', 'detaching')),
    attach_time TEXT NOT NULL,
    -- what the volume delegate exported (JSON): needed again to detach
    source TEXT,
    PRIMARY KEY (volume_id, vmm_host, vm_id),
    UNIQUE (vmm_host, vm_id, device)
  );

  -- EBS-style idempotency: a client token names one create for its owner.
  CREATE TABLE client_tokens (
    owner TEXT NOT NULL,
    token TEXT NOT NULL,
    operation TEXT NOT NULL,
    params TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (owner, token)
  );

  -- The journal: each multi-step operation and each external step it took.
  CREATE TABLE workflows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    data TEXT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE INDEX workflows_running ON workflows(state) WHERE state = 'running';

  CREATE TABLE workflow_steps (
    workflow_id INTEGER NOT NULL REFERENCES workflows(id),
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('started', 'done', 'undone', 'failed')),
    error TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (workflow_id, idx)
  );

  -- Undo steps that failed: never forgotten, retried until they succeed.
  CREATE TABLE leftovers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    step TEXT NOT NULL,
    data TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL
  );
  `,
  `
  -- One runner at a time: a workflow or leftover undo is claimed with a lease
  -- (owner, expiry) before anyone runs it. Retries back off (attempts,
  -- next_attempt_at) and give up after a limit (parked_at), putting their
  -- resource in error; parked_status is the status it had, put back when a
  -- repair resumes the work.
  ALTER TABLE workflows ADD COLUMN lease_owner TEXT;
  ALTER TABLE workflows ADD COLUMN lease_until TEXT;
  ALTER TABLE workflows ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE workflows ADD COLUMN next_attempt_at TEXT;
  ALTER TABLE workflows ADD COLUMN first_failed_at TEXT;
  ALTER TABLE workflows ADD COLUMN last_error TEXT;
  ALTER TABLE workflows ADD COLUMN parked_at TEXT;
  ALTER TABLE workflows ADD COLUMN parked_status TEXT;
  CREATE INDEX workflows_resource ON workflows(resource_id, state);

  ALTER TABLE leftovers ADD COLUMN resource_id TEXT;
  ALTER TABLE leftovers ADD COLUMN lease_owner TEXT;
  ALTER TABLE leftovers ADD COLUMN lease_until TEXT;
  ALTER TABLE leftovers ADD COLUMN parked_at TEXT;
  ALTER TABLE leftovers ADD COLUMN parked_status TEXT;
  UPDATE leftovers SET resource_id = (SELECT resource_id FROM workflows w WHERE w.id = leftovers.workflow_id);
  CREATE INDEX leftovers_resource ON leftovers(resource_id);

  -- Every VMM host a volume was ever attached on: before its data is deleted,
  -- those hosts must show that no VM still holds it.
  CREATE TABLE volume_hosts (
    volume_id TEXT NOT NULL,
    vmm_host TEXT NOT NULL,
    PRIMARY KEY (volume_id, vmm_host)
  );
  INSERT OR IGNORE INTO volume_hosts SELECT volume_id, vmm_host FROM attachments;
  `,
  // Issue 9, attach by instance id: the instance an attachment was asked for,
  // beside the host and VM it resolved to (NULL for the vmmHost + vmId form).
  `
  ALTER TABLE attachments ADD COLUMN instance_id TEXT;
  `,
  // Issue 8, users: snapshot sharing (EBS's createVolumePermission) and
  // per-user quota overrides (the front's configuration holds the defaults).
  `
  CREATE TABLE snapshot_shares (
    snapshot_id TEXT NOT NULL REFERENCES snapshots(snapshot_id),
    user TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, user)
  );
  -- "What is shared with me": describe-snapshots of every user reads it.
  CREATE INDEX snapshot_shares_user ON snapshot_shares(user);
  -- A deleted snapshot's shares go with it, whoever deletes the row.
  CREATE TRIGGER snapshot_shares_follow_delete BEFORE DELETE ON snapshots
  BEGIN
    DELETE FROM snapshot_shares WHERE snapshot_id = old.snapshot_id;
  END;

  -- A NULL limit is the configured default.
  CREATE TABLE quotas (
    owner TEXT PRIMARY KEY,
    volumes INTEGER CHECK (volumes >= 0),
    gib INTEGER CHECK (gib >= 0),
    snapshots INTEGER CHECK (snapshots >= 0),
    updated_at TEXT NOT NULL
  );
  `,
  // Issue 10, pages at any size: DescribeVolumes/DescribeSnapshots read one
  // page in (create_time, id) order from where the last one ended (keyset
  // pagination, src/db/listing.ts). Each index finds the first row of a page
  // and reads on in order: for one owner, for everyone (administrators), and
  // for a status. They replace the owner-only indexes, which they cover.
  // Attachments are found by volume through their primary key.
  `
  DROP INDEX volumes_owner;
  CREATE INDEX volumes_owner_page ON volumes(owner, create_time, volume_id);
  CREATE INDEX volumes_page ON volumes(create_time, volume_id);
  CREATE INDEX volumes_status_page ON volumes(status, create_time, volume_id);
  DROP INDEX snapshots_owner;
  CREATE INDEX snapshots_owner_page ON snapshots(owner, create_time, snapshot_id);
  CREATE INDEX snapshots_page ON snapshots(create_time, snapshot_id);
  CREATE INDEX snapshots_status_page ON snapshots(status, create_time, snapshot_id);
  `,
  // Issue 10, work that grows with change: what the creation monitor and the
  // front's long-poll of each volume delegate look for on every round (volumes
  // being created, snapshots being copied, by delegate), found through indexes
  // holding only those rows, so a round costs the same with 100,000 finished
  // records as with none.
  `
  CREATE INDEX volumes_creating ON volumes(delegate) WHERE status = 'creating';
  CREATE INDEX snapshots_pending ON snapshots(delegate) WHERE status = 'pending';
  `,
  // Issue 16, generations: each workflow on a volume or snapshot takes the
  // next number of that resource, in the transaction that journals it, and
  // every delegate call it makes carries it (src/db/generations.ts).
  `
  CREATE TABLE generations (
    resource_id TEXT PRIMARY KEY,
    generation INTEGER NOT NULL CHECK (generation > 0)
  );
  `,
  // Issue 16 item 9, pages that never skip: a page continued after the last
  // record's (create_time, id), so a record inserted later in the same
  // millisecond with a smaller id, or after the clock stepped back, sorted
  // before the key and was never shown. Pages are now in insertion order:
  // page_seq, one counter for volumes and snapshots, taken by a trigger in
  // the inserting transaction (BEGIN IMMEDIATE, so one at a time) and never
  // reused, a deleted record's number included. Existing rows are numbered in
  // their old page order. The page indexes keep their names, on page_seq.
  `
  ALTER TABLE volumes ADD COLUMN page_seq INTEGER;
  ALTER TABLE snapshots ADD COLUMN page_seq INTEGER;
  UPDATE volumes SET page_seq = r.n
    FROM (SELECT volume_id AS id, row_number() OVER (ORDER BY create_time, volume_id) AS n FROM volumes) AS r
    WHERE volumes.volume_id = r.id;
  UPDATE snapshots SET page_seq = r.n + (SELECT count(*) FROM volumes)
    FROM (SELECT snapshot_id AS id, row_number() OVER (ORDER BY create_time, snapshot_id) AS n FROM snapshots) AS r
    WHERE snapshots.snapshot_id = r.id;
  CREATE TABLE page_sequence (last INTEGER NOT NULL);
  INSERT INTO page_sequence (last) SELECT (SELECT count(*) FROM volumes) + (SELECT count(*) FROM snapshots);
  CREATE TRIGGER volumes_page_seq AFTER INSERT ON volumes
  BEGIN
    UPDATE page_sequence SET last = last + 1;
    UPDATE volumes SET page_seq = (SELECT last FROM page_sequence) WHERE volume_id = new.volume_id;
  END;
  CREATE TRIGGER snapshots_page_seq AFTER INSERT ON snapshots
  BEGIN
    UPDATE page_sequence SET last = last + 1;
    UPDATE snapshots SET page_seq = (SELECT last FROM page_sequence) WHERE snapshot_id = new.snapshot_id;
  END;
  DROP INDEX volumes_owner_page;
  DROP INDEX volumes_page;
  DROP INDEX volumes_status_page;
  CREATE INDEX volumes_owner_page ON volumes(owner, page_seq);
  CREATE UNIQUE INDEX volumes_page ON volumes(page_seq);
  CREATE INDEX volumes_status_page ON volumes(status, page_seq);
  DROP INDEX snapshots_owner_page;
  DROP INDEX snapshots_page;
  DROP INDEX snapshots_status_page;
  CREATE INDEX snapshots_owner_page ON snapshots(owner, page_seq);
  CREATE UNIQUE INDEX snapshots_page ON snapshots(page_seq);
  CREATE INDEX snapshots_status_page ON snapshots(status, page_seq);
  `,
  // Issue 17 item 7, users attach only into their own instances: the VMs an
  // administrator assigned to a user (`vbs admin vm assign HOST VM USER`).
  // The host + VM form and the scan resolver reach, for a user, only these;
  // a cloud resolver's instances belong to their cloud owner.
  `
  CREATE TABLE vm_assignments (
    vmm_host TEXT NOT NULL,
    vm_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    assigned_at TEXT NOT NULL,
    PRIMARY KEY (vmm_host, vm_id)
  );
  CREATE INDEX vm_assignments_owner ON vm_assignments(owner, vm_id);
  `,
  // Issue 17 item 10, snapshot storage has its own quota (EBS counts it apart
  // from volume storage): a user's limit on GiB of snapshots (NULL: the default).
  `
  ALTER TABLE quotas ADD COLUMN snapshot_gib INTEGER CHECK (snapshot_gib >= 0);
  `,
  // Issue 20, metrics: each scrape counts volumes and snapshots by delegate and
  // status (src/db/gauges.ts). These indexes hold just those two columns, so
  // the count reads an index in order instead of every row and a sort: about
  // five times less work at 100,000 records, on the front's event loop.
  `
  CREATE INDEX volumes_delegate_status ON volumes(delegate, status);
  CREATE INDEX snapshots_delegate_status ON snapshots(delegate, status);
  `,
  // Issue 18, the EC2 Query API. Tags on volumes and snapshots (EC2's
  // CreateTags), gone with their resource; a volume's availability zone (a
  // group of volume delegates in the front's configuration; rows made before
  // zones existed are given their delegate's zone when the front starts); and
  // the access keys that sign EC2 requests. A key's secret is kept sealed
  // (AES-256-GCM) under a key in a 0600 file outside the database
  // (src/ec2/access-keys.ts): the server must recompute each HMAC, so it needs
  // the secret itself, but the database alone does not give it.
  `
  CREATE TABLE tags (
    resource_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (resource_id, key)
  );
  CREATE INDEX tags_key ON tags(key, value);
  CREATE TRIGGER volumes_tags_gone AFTER DELETE ON volumes
  BEGIN
    DELETE FROM tags WHERE resource_id = old.volume_id;
  END;
  CREATE TRIGGER snapshots_tags_gone AFTER DELETE ON snapshots
  BEGIN
    DELETE FROM tags WHERE resource_id = old.snapshot_id;
  END;
  ALTER TABLE volumes ADD COLUMN availability_zone TEXT;
  CREATE INDEX volumes_zone_page ON volumes(availability_zone, page_seq);
  CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    secret_sealed TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
  );
  CREATE INDEX access_keys_user ON access_keys(user);
  `,
  // Issue 18, ModifyVolume: a volume grows. One record per request, in EC2's
  // shape (modifying -> optimizing -> completed, or failed), kept after it
  // ends so DescribeVolumesModifications lists it. While one is modifying its
  // growth counts against the owner's GiB quota (src/db/quotas.ts); at most one
  // per volume is in flight (the partial unique index).
  `
  CREATE TABLE volume_modifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    volume_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('modifying', 'optimizing', 'completed', 'failed')),
    status_message TEXT,
    original_size INTEGER NOT NULL CHECK (original_size > 0),
    target_size INTEGER NOT NULL CHECK (target_size > original_size),
    progress INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    start_time TEXT NOT NULL,
    end_time TEXT
  );
  CREATE INDEX volume_modifications_volume ON volume_modifications(volume_id, seq);
  CREATE INDEX volume_modifications_owner ON volume_modifications(owner, seq);
  CREATE UNIQUE INDEX volume_modifications_one_in_flight ON volume_modifications(volume_id) WHERE state IN ('modifying', 'optimizing');
  -- A deleted volume's records go with it, whoever deletes the row.
  CREATE TRIGGER volume_modifications_follow_delete BEFORE DELETE ON volumes
  BEGIN
    DELETE FROM volume_modifications WHERE volume_id = old.volume_id;
  END;
  `,
  // Read-only attachments on one host share a session and an export, and the
  // last to leave withdraws them. An attachment whose disk is off its VM (a
  // detach past its first step, a failed attach past its DetachDisk undo) will
  // never use them again, so it no longer counts as "someone else here":
  // without this, two readers leaving together each left them to the other.
  `
  ALTER TABLE attachments ADD COLUMN disk_gone INTEGER NOT NULL DEFAULT 0 CHECK (disk_gone IN (0, 1));
  -- A workflow's leftover undos are retried in the order they were kept (see Journal.claimLeftover).
  CREATE INDEX leftovers_workflow ON leftovers(workflow_id, id);
  `,
  // The export a volume has on a VMM host, as its volume delegate last
  // described it, and whether the host may have a session to it (a login was
  // tried since the last logout): the last attachment to leave the host logs
  // that session out with it, even one that never learned the export (an
  // attach whose export step's outcome was unknown), when an earlier leaver
  // kept the session for it.
  `
  ALTER TABLE volume_hosts ADD COLUMN export_source TEXT;
  ALTER TABLE volume_hosts ADD COLUMN session_may_exist INTEGER NOT NULL DEFAULT 0 CHECK (session_may_exist IN (0, 1));
  `,
];

/**
 * What PostgreSQL needs after a migration (by its index) beyond the translated
 * SQL (src/db/sql-dialect.ts): SQLite gives every table an implicit rowid, in
 * insertion order, that DescribeTags pages follow (src/db/tags.ts); PostgreSQL
 * has none, so tags get a column of that name, numbered the same way.
 * Keyed by the migration they follow; a new one goes with the last migration
 * at the time (a database made before it then lacks it: add it as its own
 * migration instead once PostgreSQL deployments exist).
 */
export const POSTGRES_ADDITIONS: Readonly<Record<number, string>> = {
  11: 'ALTER TABLE tags ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY',
  // The claim scans' vbs_runner_gone(lease_owner) reads the claimed rows' owners
  // first (src/db/postgres.ts): only work in progress holds a lease.
  12: `CREATE INDEX workflows_leased ON workflows(lease_owner) WHERE lease_owner IS NOT NULL;
       CREATE INDEX leftovers_leased ON leftovers(lease_owner) WHERE lease_owner IS NOT NULL;`,
};
