/** What backups on either engine share (src/db/backup.ts: SQLite; src/db/pg-backup.ts: PostgreSQL). */

/** The tables every VBS metadata database has from its first schema version on. */
export const CORE_TABLES = ['ids', 'volumes', 'snapshots', 'attachments', 'workflows'];

export interface BackupInfo {
  readonly schemaVersion: number;
  readonly volumes: number;
  readonly snapshots: number;
  readonly attachments: number;
}

/** A backup or restore that cannot be done; the message is safe to show. `tooLarge`: the backup must be taken on the files. */
export class BackupError extends Error {
  constructor(
    message: string,
    readonly tooLarge = false,
  ) {
    super(message);
    this.name = 'BackupError';
  }
}
