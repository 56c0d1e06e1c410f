import type { CommandRunner } from '../../commands/runner.js';

/** A target as its daemon lists it. */
export interface TargetInfo {
  tid: number;
  iqn: string;
  /** Data LUNs with their backing path (tgt's LUN 0, the controller, is left out). */
  luns: { lun: number; path: string; sizeMB?: number }[];
  /**
   * Who may log in: tgt's ACL entries (initiator names, or ALL); IET lets
   * everyone in as far as ietadm can say, so its targets list ['ALL'].
   */
  acl: string[];
  /** Open sessions (tgt's I_T nexuses): which initiator, and its connection ids. */
  sessions: { sid: number; initiator: string; cids: number[] }[];
  /** CHAP accounts bound to the target (tgt; IET's ietadm cannot be given one safely): a login must prove one. */
  accounts: string[];
}

/** The ACL entry that admits every initiator. */
export const ACL_ALL = 'ALL';

/** Parses /proc/net/iet/volume: `tid:N name:IQN`, then a tab-indented line per LUN ending in `path:P`. */
export function parseIetVolume(text: string): TargetInfo[] {
  const out: TargetInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const t = /^tid:([0-9]+) name:(\S+)\s*$/.exec(line);
    if (t) {
      out.push({ tid: Number(t[1]), iqn: t[2]!, luns: [], acl: [ACL_ALL], sessions: [], accounts: [] });
      continue;
    }
    const l = /^\s+lun:([0-9]+) .*?\bpath:(.*)$/.exec(line);
    const current = out[out.length - 1];
    if (l && current) current.luns.push({ lun: Number(l[1]), path: l[2]! });
    else throw new Error(`/proc/net/iet/volume: unexpected line ${JSON.stringify(line.slice(0, 200))}`);
  }
  return out;
}

/**
 * Parses `tgtadm --op show --mode target`: `Target N: IQN` at column 0, sections
 * at 4 spaces (`LUN information:`, `ACL information:`), their entries deeper.
 * Lines it does not need (system, LUN and account details) are skipped.
 */
export function parseTgtShow(text: string): TargetInfo[] {
  const out: TargetInfo[] = [];
  let section = '';
  let lun: { lun: number; path: string; sizeMB?: number } | undefined;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const t = /^Target ([0-9]+): (\S+)\s*$/.exec(line);
    if (t) {
      out.push({ tid: Number(t[1]), iqn: t[2]!, luns: [], acl: [], sessions: [], accounts: [] });
      section = '';
      lun = undefined;
      continue;
    }
    const current = out[out.length - 1];
    if (!current) throw new Error(`tgtadm show: unexpected line ${JSON.stringify(line.slice(0, 200))}`);
    const s = /^ {4}(\S.*):\s*$/.exec(line);
    if (s) {
      section = s[1]!;
      continue;
    }
    if (section === 'LUN information') {
      const l = /^\s+LUN: ([0-9]+)\s*$/.exec(line);
      if (l) {
        lun = { lun: Number(l[1]), path: '' };
        if (lun.lun !== 0) current.luns.push(lun);
        continue;
      }
      const p = /^\s+Backing store path: (.*)$/.exec(line);
      if (p && lun) lun.path = p[1]!.trim();
      // The size the LUN serves, in millions of bytes (tgt reads it when the LUN is added, never after).
      const z = /^\s+Size: ([0-9]+) MB,/.exec(line);
      if (z && lun) lun.sizeMB = Number(z[1]);
    } else if (section === 'I_T nexus information') {
      const n = /^\s+I_T nexus: ([0-9]+)\s*$/.exec(line);
      if (n) current.sessions.push({ sid: Number(n[1]), initiator: '', cids: [] });
      const session = current.sessions[current.sessions.length - 1];
      const i = /^\s+Initiator: (\S+)/.exec(line);
      if (i && session) session.initiator = i[1]!;
      const c = /^\s+Connection: ([0-9]+)\s*$/.exec(line);
      if (c && session) session.cids.push(Number(c[1]));
    } else if (section === 'ACL information') {
      current.acl.push(line.trim());
    } else if (section === 'Account information') {
      // Incoming accounts are bare names; the outgoing one says so.
      const name = line.trim();
      if (!name.endsWith('(outgoing)')) current.accounts.push(name);
    }
  }
  return out;
}

/** Parses `tgtadm --op show --mode account`: `Account list:`, then one indented name a line. */
export function parseTgtAccounts(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => /^\s+\S/.test(l))
    .map((l) => l.trim());
}

/** Creating, listing and removing targets with one daemon's tool; every method is one pattern. */
export interface TargetTool {
  readonly kind: 'iet' | 'tgt';
  list(): Promise<TargetInfo[]>;
  addTarget(tid: number, iqn: string): Promise<void>;
  addLun(tid: number, lun: number, lvPath: string): Promise<void>;
  /**
   * Whether the tool can keep one initiator out of a target (tgt's ACL).
   * ietadm cannot (IET reads its initiators.allow file): its targets admit
   * every initiator that reaches the portal.
   */
  readonly fences: boolean;
  /** Adds an initiator name (or ALL) to the target's ACL (tgt; nothing for IET). */
  admit(tid: number, initiator: string): Promise<void>;
  /** Removes an ACL entry: that initiator can no longer log in. */
  deny(tid: number, initiator: string): Promise<void>;
  /** Ends one connection of a session, so an initiator taken off the ACL stops writing now. */
  dropConnection(tid: number, sid: number, cid: number): Promise<void>;
  removeLun(tid: number, lun: number): Promise<void>;
  removeTarget(tid: number): Promise<void>;
  /**
   * Whether the tool can require CHAP of one export's host (tgt's accounts).
   * ietadm takes an account's password only on its command line
   * (`--params IncomingUser=u,Password=p`), where every local user reads it,
   * so VBS gives IET targets none.
   */
  readonly chap: boolean;
  /** Every CHAP account the daemon has (names only: no tool shows a secret). */
  listAccounts(): Promise<string[]>;
  /** A new account; its secret travels on the tool's standard input, never its command line. */
  newAccount(user: string, secret: string): Promise<void>;
  /** Deletes an account, which also unbinds it from every target. */
  deleteAccount(user: string): Promise<void>;
  /** Binds an account to a target: a login to it must then prove one of its accounts. */
  bindAccount(tid: number, user: string): Promise<void>;
  /** Unbinds an account from a target (the account stays). */
  unbindAccount(tid: number, user: string): Promise<void>;
}

/** iscsi.<kind>.* patterns; for iet with the simulator, their `.sim` variants. `chap`: tgt requires per-export CHAP accounts (the operator may turn it off). */
export function targetTool(kind: 'iet' | 'tgt', runner: CommandRunner, variant: 'sim' | undefined, chap = true): TargetTool {
  const run = (action: string, params: Record<string, string | number> = {}) => runner.run(`iscsi.${kind}.${action}`, params, variant);
  return {
    kind,
    list: async () => (kind === 'iet' ? parseIetVolume : parseTgtShow)((await run('list')).stdout),
    addTarget: async (tid, iqn) => void (await run('add-target', { tid, iqn })),
    addLun: async (tid, lun, lvPath) => void (await run('add-lun', { tid, lun, lvPath })),
    fences: kind === 'tgt',
    admit: async (tid, initiator) => void (kind === 'tgt' && (await run('bind', { tid, initiator }))),
    deny: async (tid, initiator) => void (kind === 'tgt' && (await run(initiator === ACL_ALL ? 'unbind-all' : 'unbind', initiator === ACL_ALL ? { tid } : { tid, initiator }))),
    dropConnection: async (tid, sid, cid) => void (kind === 'tgt' && (await run('drop-connection', { tid, sid, cid }))),
    removeLun: async (tid, lun) => void (await run('remove-lun', { tid, lun })),
    removeTarget: async (tid) => void (await run('remove-target', { tid })),
    chap: kind === 'tgt' && chap,
    listAccounts: async () => (kind === 'tgt' ? parseTgtAccounts((await run('account-list')).stdout) : []),
    newAccount: async (chapUser, chapSecret) => void (kind === 'tgt' && (await run('account-new', { chapUser, chapSecret }))),
    deleteAccount: async (chapUser) => void (kind === 'tgt' && (await run('account-delete', { chapUser }))),
    bindAccount: async (tid, chapUser) => void (kind === 'tgt' && (await run('account-bind', { tid, chapUser }))),
    unbindAccount: async (tid, chapUser) => void (kind === 'tgt' && (await run('account-unbind', { tid, chapUser }))),
  };
}

/** Keys a target kind needs in commands.properties. */
export function targetPatterns(kind: 'iet' | 'tgt'): string[] {
  const actions = ['list', 'add-target', 'add-lun', 'remove-lun', 'remove-target', ...(kind === 'tgt' ? ['bind', 'unbind', 'unbind-all', 'drop-connection', 'account-list', 'account-new', 'account-delete', 'account-bind', 'account-unbind'] : [])];
  return actions.map((a) => `iscsi.${kind}.${a}`);
}
