import { readFileSync } from 'node:fs';
import { VbsError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { BackupError, backupToBuffer } from '../db/backup.js';
import type { Metadata } from '../db/metadata.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { ConsistencyChecker } from './check/checker.js';
import type { Fix } from './check/findings.js';

/** What one BackupMetadata answer carries at most (before base64): below the SOAP client's 64 MiB answer limit. */
export const MAX_BACKUP_ANSWER_BYTES = 40 * 1024 * 1024;

/**
 * The administrators' operations on the metadata as a whole
 * (docs/operators/backup.md): a backup taken while the front serves, and the
 * rebuild of lost metadata from what the hosts hold. Callers check the
 * caller is an administrator.
 */
export class MetadataAdmin {
  constructor(
    private readonly meta: Metadata,
    private readonly checker: ConsistencyChecker,
    private readonly maxBackupBytes = MAX_BACKUP_ANSWER_BYTES,
  ) {}

  async backup(log: Logger): Promise<XmlRecord> {
    try {
      const { bytes, info } = await backupToBuffer(this.meta.db, this.maxBackupBytes, (f) => readFileSync(f));
      log.info('metadata backup', { sizeBytes: bytes.length, ...info });
      return { database: bytes.toString('base64'), sizeBytes: bytes.length, ...info };
    } catch (err) {
      if (err instanceof BackupError && err.tooLarge) throw new VbsError('OperationFailed', `The metadata is too large to back up through the service (${err.message}); back up its files with vbs admin backup --data.`);
      throw err;
    }
  }

  /**
   * Only on empty metadata: on any other, adopting is `vbs admin check
   * --repair`'s job, which weighs each difference against what the metadata
   * already says. Every adoption is checked again when applied (a create
   * racing the rebuild keeps its own rows).
   */
  async rebuild(log: Logger): Promise<XmlRecord> {
    const { held } = this.meta.db.prepare('SELECT (SELECT count(*) FROM volumes) + (SELECT count(*) FROM snapshots) AS held').get() as { held: number };
    if (held > 0) {
      throw new VbsError('IncorrectState', `The metadata already holds ${held} volumes and snapshots: rebuild runs on a new database only; use vbs admin check --repair to adopt what the hosts hold beside it.`);
    }
    const result = await this.checker.check(isAdoption, log);
    log.info('metadata rebuilt from the hosts', { adopted: result.finding.filter((f) => f.repaired).length, left: result.finding.filter((f) => !f.repaired).length });
    return { clean: result.clean, finding: result.finding as unknown as XmlRecord[] };
  }
}

const isAdoption = (fix: Fix): boolean => fix.type === 'adopt-object' || fix.type === 'adopt-attachment';
