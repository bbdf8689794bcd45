using WriterProgram = WhaleWall.Actors.Nft.NftWriterCommands.Program;
using Akka.Actor;
using WhaleWall.Actors.Nft;
using static WhaleWall.Actors.Nft.NftWriterCommands;
using static WhaleWall.Actors.Nft.NftWriterEvents;

namespace WhaleWall.Bench;

/// <summary>Sits between the container actors and the real <see cref="NftWriterActor"/>:
/// forwards every message, and records when each owner's Program was answered (the writer
/// answers right after libnftables returned, i.e. after the kernel committed).</summary>
public sealed class WriterProbe : ReceiveActor
{
    /// <param name="Fragment">what the Program asked for</param>
    public sealed record Answer(string Owner, bool Empty, bool Ok, long SentTicks, long AnsweredTicks, long SentUnixNanos, long AnsweredUnixNanos,
        WhaleWall.Firewall.Nft.Fragment? Fragment = null);

    public sealed class Log
    {
        private readonly List<Answer> answers = new();
        private readonly HashSet<string> enforced = new();

        public void Add(Answer a)
        {
            lock (answers)
            {
                answers.Add(a);
                if (a.Ok && !a.Empty) enforced.Add(a.Owner); else if (a.Ok) enforced.Remove(a.Owner);
            }
        }

        public List<Answer> All { get { lock (answers) return answers.ToList(); } }

        /// <summary>Owners whose latest answered Program put elements in the kernel.</summary>
        public int EnforcedCount { get { lock (answers) return enforced.Count; } }
    }

    private readonly Dictionary<(string, long), (IActorRef ReplyTo, bool Empty, long Sent, long SentUnixNanos, WhaleWall.Firewall.Nft.Fragment Fragment)> pending = new();

    public WriterProbe(IActorRef writer, Log log)
    {
        Receive<WriterProgram>(p =>
        {
            pending[(p.Fragment.Owner, p.Version)] = (Sender, p.Fragment.Elements.IsEmpty, System.Diagnostics.Stopwatch.GetTimestamp(), Clock.UnixNanos(), p.Fragment);
            writer.Tell(p, Self);
        });
        Receive<ExpectOwners>(m => writer.Tell(m, Self));
        Receive<Applied>(a => Answered(a.Owner, a.Version, true, a, log));
        Receive<Rejected>(r => Answered(r.Owner, r.Version, false, r, log));
    }

    private void Answered(string owner, long version, bool ok, object message, Log log)
    {
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (!pending.Remove((owner, version), out var p)) return;
        log.Add(new Answer(owner, p.Empty, ok, p.Sent, now, p.SentUnixNanos, Clock.UnixNanos(), p.Fragment));
        p.ReplyTo.Tell(message);
    }

    public static Props Props(IActorRef writer, Log log) => Akka.Actor.Props.Create(() => new WriterProbe(writer, log));
}
