using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using WhaleWall.Firewall.Binding;
using WhaleWall.Firewall.Policy;
using static WhaleWall.Actors.Binding.BridgePortsCommands;
using static WhaleWall.Actors.Binding.BridgePortsEvents;

namespace WhaleWall.Actors.Binding;

/// <summary>Finds containers' ports on their bridges (docs/binding.md) and keeps the register of
/// which port is whose: a port bound to one container is never offered to another (a running
/// container that copies a newcomer's MAC is skipped), two candidates mean "refuse". Each lookup
/// waits on a netlink socket of its own, off the actor's thread, at most <see cref="MaxLookups"/> at once (Docker reports `network
/// connect` a few hundred ms before the port is ready); ports restored from the journal are
/// trusted only in the boot they were found in and while the link still exists.</summary>
public sealed class BridgePortsActor : ReceiveActor
{
    /// <summary>How long a lookup waits for the port to appear.</summary>
    public static readonly TimeSpan LookupTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Most lookups under way at once: each holds a thread and a netlink socket for up to
    /// <see cref="LookupTimeout"/>. More wait in line (a burst of containers whose ports never
    /// appear took 907 threads and 579 MB at 1,000); a port that appeared meanwhile is found at
    /// once when its turn comes.</summary>
    public const int MaxLookups = 32;

    private readonly Queue<(FindPort Request, IActorRef ReplyTo)> waiting = new();
    private int running;

    private readonly Func<IBridgePorts> open;
    private readonly string bootId;
    private readonly ILoggingAdapter log = Context.GetLogger();
    private readonly Dictionary<int, string> owners = new();             // port index -> container id
    private readonly Dictionary<string, HashSet<int>> byContainer = new(); // container id -> its ports

    public BridgePortsActor(Func<IBridgePorts> open, string bootId)
    {
        this.open = open;
        this.bootId = bootId;

        Receive<FindPort>(f =>
        {
            if (running < MaxLookups) Look(f, Sender);
            else
            {
                waiting.Enqueue((f, Sender));
                log.Debug("{0}: port lookup waits its turn ({1} under way, {2} waiting)", f.ContainerId[..Math.Min(12, f.ContainerId.Length)], running, waiting.Count);
            }
        });
        Receive<Looked>(l =>
        {
            running--;
            Answer(l);
            while (running < MaxLookups && waiting.TryDequeue(out var next)) Look(next.Request, next.ReplyTo);
        });

        void Look(FindPort f, IActorRef replyTo)
        {
            running++;
            // ports bound meanwhile are skipped: computed when the lookup starts, not when it was asked
            var skip = owners.Where(o => o.Value != f.ContainerId).Select(o => o.Key).ToHashSet();
            log.Debug("{0}: looking for its port on {1} with {2}", f.ContainerId[..Math.Min(12, f.ContainerId.Length)], f.Bridge, f.Mac);
            var self = Self;
            Task.Factory.StartNew(() =>
            {
                var finder = open();
                try
                {
                    var found = finder.FindByMac(f.Bridge, f.Mac, skip);
                    if (found.Count > 1) return new Looked(f, replyTo, null, $"{found.Count} ports of {f.Bridge} carry {f.Mac}: refused");
                    var port = found.Count == 1 ? found[0] : finder.WaitForMac(f.Bridge, f.Mac, LookupTimeout, skip);
                    return new Looked(f, replyTo, port, port is null ? $"no single port of {f.Bridge} carries {f.Mac} within {LookupTimeout.TotalSeconds:0} s" : null);
                }
                finally { (finder as IDisposable)?.Dispose(); }
            }, TaskCreationOptions.LongRunning).PipeTo(self, failure: e => new Looked(f, replyTo, null, e.Message));
        }

        void Answer(Looked l)
        {
            if (l.Port is { } port && owners.TryGetValue(port.Index, out var holder) && holder != l.Request.ContainerId)
                l = l with { Port = null, Problem = $"port {port.Name} was bound to another container meanwhile" };
            if (l.Port is { } p)
            {
                log.Info("{0}: bound to port {1} (index {2}) of {3} with {4}",
                    l.Request.ContainerId[..Math.Min(12, l.Request.ContainerId.Length)], p.Name, p.Index, l.Request.Bridge, l.Request.Mac);
                owners[p.Index] = l.Request.ContainerId;
                Register(l.Request.ContainerId).Add(p.Index);
                l.ReplyTo.Tell(new PortFound(l.Request.NetworkId, l.Request.Mac, new BoundPort(p.Index, p.Name, bootId)));
            }
            else
            {
                log.Warning("{0}: port on {1} not found ({2}); its binding stays without a port (it sends nothing)",
                    l.Request.ContainerId[..Math.Min(12, l.Request.ContainerId.Length)], l.Request.Bridge, l.Problem);
                l.ReplyTo.Tell(new PortNotFound(l.Request.NetworkId, l.Request.Mac, l.Problem ?? "not found"));
            }
        }
        Receive<ValidatePorts>(v =>
        {
            var valid = ImmutableHashSet.CreateBuilder<BoundPort>();
            var finder = open();
            try
            {
                foreach (var (container, port) in v.Ports)
                {
                    if (port.BootId != bootId || !finder.Exists(port.Index, port.Name)) continue;
                    if (owners.TryGetValue(port.Index, out var holder) && holder != container) continue;
                    owners[port.Index] = container;
                    Register(container).Add(port.Index);
                    valid.Add(port);
                }
            }
            finally { (finder as IDisposable)?.Dispose(); }
            Sender.Tell(new PortsValidated(valid.ToImmutable()));
        });
        Receive<Release>(r =>
        {
            if (!byContainer.Remove(r.ContainerId, out var held)) return;
            foreach (var index in held)
                if (owners.TryGetValue(index, out var holder) && holder == r.ContainerId) owners.Remove(index);
        });
    }

    private HashSet<int> Register(string container) =>
        byContainer.TryGetValue(container, out var set) ? set : byContainer[container] = [];

    public static Props Props(Func<IBridgePorts> open, string bootId) =>
        Akka.Actor.Props.Create(() => new BridgePortsActor(open, bootId));

    /// <summary>This boot's id (<c>/proc/sys/kernel/random/boot_id</c>), or "unknown".</summary>
    public static string ReadBootId()
    {
        try { return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(); }
        catch (IOException) { return "unknown"; }
        catch (UnauthorizedAccessException) { return "unknown"; }
    }

    private sealed record Looked(FindPort Request, IActorRef ReplyTo, BridgePort? Port, string? Problem);
}

public static class BridgePortsCommands
{
    /// <summary>Find the port of <paramref name="Bridge"/> whose container end has <paramref name="Mac"/>.</summary>
    public sealed record FindPort(string ContainerId, string NetworkId, string Bridge, string Mac);

    /// <summary>Start-up: which of the journal's ports are still this boot's, still there, and
    /// nobody else's. Answered with <see cref="BridgePortsEvents.PortsValidated"/>.</summary>
    public sealed record ValidatePorts(ImmutableArray<(string ContainerId, BoundPort Port)> Ports);

    /// <summary>The container is gone: its ports may be someone else's later.</summary>
    public sealed record Release(string ContainerId);
}

public static class BridgePortsEvents
{
    public sealed record PortFound(string NetworkId, string Mac, BoundPort Port);

    public sealed record PortNotFound(string NetworkId, string Mac, string Reason);

    public sealed record PortsValidated(ImmutableHashSet<BoundPort> Valid);
}

/// <summary>Registry key of the node's <see cref="BridgePortsActor"/>.</summary>
public sealed class BridgePortsRegistry { }

public static class BridgePortsActorExtensions
{
    public static AkkaConfigurationBuilder AddBridgePortsActor(this AkkaConfigurationBuilder builder, Func<IBridgePorts> open) =>
        builder.WithActors((system, registry) =>
            registry.Register<BridgePortsRegistry>(system.ActorOf(BridgePortsActor.Props(open, BridgePortsActor.ReadBootId()), "bridge-ports")));
}
