using System.Collections.Immutable;
using System.Net;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;

namespace WhaleWall.Actors.State;

public static class LearnedStoreCommands
{
    /// <summary>Container <paramref name="Id"/> now holds <paramref name="Learned"/> (empty: it
    /// is gone, or learned nothing).</summary>
    public sealed record Record(string Id, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>> Learned);
}

/// <summary>Keeps <see cref="LearnedFile"/> up to date from the container actors' learned
/// addresses: at most one write per <see cref="WriteEvery"/>, only when something changed, and
/// once more when it stops. Off the answer path: a container actor only tells it, and answers the
/// proxy when the kernel has the addresses (a crash before the next write loses at most the last
/// second's lookups, which the containers then ask again).</summary>
public sealed class LearnedStoreActor : ReceiveActor, IWithTimers
{
    public static readonly TimeSpan WriteEvery = TimeSpan.FromSeconds(1);

    private readonly LearnedFile file;
    private readonly TimeProvider clock;
    private readonly ILoggingAdapter log = Context.GetLogger();
    private readonly Dictionary<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>> containers = new(StringComparer.Ordinal);
    private bool dirty;
    private string? lastError;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="restored">what was read at start-up (kept until each container says otherwise or it expires).</param>
    public LearnedStoreActor(LearnedFile file, IReadOnlyDictionary<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>> restored,
        TimeProvider? clock = null)
    {
        this.file = file;
        this.clock = clock ?? TimeProvider.System;
        foreach (var (id, learned) in restored) containers[id] = learned;
        Receive<LearnedStoreCommands.Record>(r =>
        {
            if (r.Learned.IsEmpty) dirty |= containers.Remove(r.Id);
            else
            {
                containers[r.Id] = r.Learned;
                dirty = true;
            }
        });
        Receive<WriteTick>(_ => WriteIfDirty());
    }

    public static Props Props(LearnedFile file, IReadOnlyDictionary<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>> restored,
        TimeProvider? clock = null) =>
        Akka.Actor.Props.Create(() => new LearnedStoreActor(file, restored, clock));

    protected override void PreStart() => Timers.StartPeriodicTimer(WriteTick.Instance, WriteTick.Instance, WriteEvery);

    protected override void PostStop() => WriteIfDirty();

    private void WriteIfDirty()
    {
        if (!dirty) return;
        var now = clock.GetUtcNow();
        // expired entries go from memory too (a container that never learns again keeps nothing)
        foreach (var (id, learned) in containers.ToList())
        {
            var alive = Firewall.Dns.LearnedMap.Alive(learned, now);
            if (alive.IsEmpty) containers.Remove(id);
            else if (alive.Count != learned.Count || alive.Values.Sum(a => a.Count) != learned.Values.Sum(a => a.Count)) containers[id] = alive;
        }
        try
        {
            file.Write(containers, now);
            dirty = false;
            if (lastError is not null) log.Info("{0} written again", file.Path);
            lastError = null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // learned addresses are then lost at the next restart (asked again): say it once
            if (lastError != e.Message) log.Error("cannot write {0} ({1}); learned DNS addresses will not survive a restart", file.Path, e.Message);
            lastError = e.Message;
        }
    }

    private sealed class WriteTick
    {
        public static readonly WriteTick Instance = new();
    }
}

public sealed class LearnedStore { }

public static class LearnedStoreActorExtensions
{
    public static AkkaConfigurationBuilder AddLearnedStoreActor(this AkkaConfigurationBuilder builder, LearnedFile file,
        IReadOnlyDictionary<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>> restored) =>
        builder.WithActors((system, registry) =>
            registry.Register<LearnedStore>(system.ActorOf(LearnedStoreActor.Props(file, restored), "learned-store")));
}
