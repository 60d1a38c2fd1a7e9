import type { TimerClock } from '../actors/index.js';
import type { ShardReply } from './commands.js';

/**
 * The answers an owner gave to commands that carry a request id (`ShardCommand.rid`), kept
 * for a few seconds. The router repeats a command that meets silence (a request or its
 * answer lost with a NATS server that stopped); the repeat then joins the run still in
 * progress, or gets the answer already given, and the command runs once. Without it a
 * repeat would run again after whatever another device of the user did in between.
 *
 * Two generations, each `keptMs` long: an answer stays between `keptMs` and twice that after it
 * was given (a run in progress is held until it answers), and nothing stays once commands stop
 * coming (the last generations age out on a timer).
 */
export class ReplyMemory {
  private current = new Map<string, Promise<ShardReply | null>>();
  private previous = new Map<string, Promise<ShardReply | null>>();
  private readonly running = new Map<string, Promise<ShardReply | null>>();
  private rotation: unknown;

  constructor(private readonly keptMs: number, private readonly timers: TimerClock) {}

  /** The answer to the command `rid`: the one given or on its way if it came before, else `run()`'s. */
  answer(rid: string, run: () => Promise<ShardReply | null>): Promise<ShardReply | null> {
    const known = this.running.get(rid) ?? this.current.get(rid) ?? this.previous.get(rid);
    if (known) return known;
    const answer = run();
    // Held while it runs, however long (a KV write waiting out a leader election outlasts the
    // generations), and kept from when it answers: a repeat must not run it a second time.
    this.running.set(rid, answer);
    const settled = (keep: boolean) => {
      if (this.running.get(rid) !== answer) return; // stopped meanwhile
      this.running.delete(rid);
      if (!keep) return;
      this.current.set(rid, answer);
      this.rotateLater();
    };
    // Not an answer to give again: silence (this node does not serve the shard) or `moved` is
    // for a repeat to find the owner, and a failure for it to try again.
    answer.then((reply) => settled(reply !== null && (reply.ok || !reply.moved)), () => settled(false));
    return answer;
  }

  get size(): number {
    return this.running.size + this.current.size + this.previous.size;
  }

  stop(): void {
    if (this.rotation !== undefined) this.timers.clearTimeout(this.rotation);
    this.rotation = undefined;
    this.running.clear();
    this.current.clear();
    this.previous.clear();
  }

  private rotateLater(): void {
    if (this.rotation !== undefined) return;
    this.rotation = this.timers.setTimeout(() => {
      this.rotation = undefined;
      this.previous = this.current;
      this.current = new Map();
      if (this.previous.size > 0) this.rotateLater();
    }, this.keptMs);
  }
}
