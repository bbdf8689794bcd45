using System.Collections.Immutable;
using Akka.Actor;
using Akka.Hosting;
using WhaleWall.Firewall.Policy;
using static WhaleWall.Actors.Containers.PeerDirectoryCommands;
using static WhaleWall.Actors.Containers.PeerDirectoryEvents;

namespace WhaleWall.Actors.Containers;

/// <summary>Knows every container's facts so that `container:` rules can follow the
/// containers they name: watchers are told whenever a matching container appears, changes
/// address or goes.</summary>
public sealed class PeerDirectoryActor : ReceiveActor
{
    private readonly Dictionary<string, ContainerFacts> containers = new();
    private readonly Dictionary<IActorRef, Watch> watchers = new();

    public PeerDirectoryActor()
    {
        Receive<Publish>(p =>
        {
            containers.TryGetValue(p.Id, out var before);
            if (p.Facts is null) containers.Remove(p.Id); else containers[p.Id] = p.Facts;
            foreach (var (watcher, watch) in watchers)
                if (Matches(watch, before) || Matches(watch, p.Facts))
                    watcher.Tell(new PeersChanged(PeersOf(watch)));
        });
        Receive<Watch>(w =>
        {
            if (w.References.IsEmpty)
            {
                watchers.Remove(Sender);
                Context.Unwatch(Sender);
                return;
            }
            if (!watchers.ContainsKey(Sender)) Context.Watch(Sender);
            watchers[Sender] = w;
            Sender.Tell(new PeersChanged(PeersOf(w)));
        });
        Receive<Terminated>(t => watchers.Remove(t.ActorRef));
    }

    private ImmutableArray<ContainerFacts> PeersOf(Watch watch) =>
        [.. containers.Values.Where(c => Matches(watch, c)).OrderBy(c => c.Id, StringComparer.Ordinal)];

    private static bool Matches(Watch watch, ContainerFacts? facts) =>
        facts is not null && watch.References.Any(r => facts.IsNamed(r, watch.Project));
}

public sealed class PeerDirectory { }

public static class PeerDirectoryActorExtensions
{
    public static AkkaConfigurationBuilder AddPeerDirectoryActor(this AkkaConfigurationBuilder builder) =>
        builder.WithActors((system, registry) =>
            registry.Register<PeerDirectory>(system.ActorOf(Props.Create<PeerDirectoryActor>(), "peers")));
}
