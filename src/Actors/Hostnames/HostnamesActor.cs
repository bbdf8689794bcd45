using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using static WhaleWall.Actors.Hostnames.HostnamesCommands;

namespace WhaleWall.Actors.Hostnames;

/// <summary>Owns one <see cref="HostnameResolverActor"/> per distinct name, shared by every
/// container that names it: created on first use, stopped when no container needs it.</summary>
public sealed class HostnamesActor : ReceiveActor
{
    private readonly IDnsResolver resolver;
    private readonly DnsSettings settings;
    private readonly ILoggingAdapter log = Context.GetLogger();
    private readonly Dictionary<string, IActorRef> resolvers = new();
    private readonly Dictionary<string, HashSet<IActorRef>> subscribers = new();
    private readonly Dictionary<IActorRef, HashSet<string>> wanted = new();
    private long generation;

    public HostnamesActor(IDnsResolver resolver, DnsSettings settings)
    {
        this.resolver = resolver;
        this.settings = settings;
        Receive<Subscribe>(s => Change(Sender, s.Names.ToHashSet()));
        Receive<Terminated>(t => Change(t.ActorRef, []));
    }

    public static Props Props(IDnsResolver resolver, DnsSettings settings) =>
        Akka.Actor.Props.Create(() => new HostnamesActor(resolver, settings));

    private void Change(IActorRef subscriber, HashSet<string> names)
    {
        var before = wanted.TryGetValue(subscriber, out var w) ? w : [];
        foreach (var name in names.Except(before))
        {
            if (!resolvers.TryGetValue(name, out var child))
            {
                child = Context.ActorOf(HostnameResolverActor.Props(name, resolver, settings), $"dns-{Sanitize(name)}-{generation++}");
                resolvers[name] = child;
                subscribers[name] = [];
                log.Info("resolving {0}", name);
            }
            subscribers[name].Add(subscriber);
            child.Tell(new HostnameResolverActor.AddSubscriber(subscriber));
        }
        foreach (var name in before.Except(names))
        {
            subscribers[name].Remove(subscriber);
            if (subscribers[name].Count > 0) continue;
            Context.Stop(resolvers[name]);
            resolvers.Remove(name);
            subscribers.Remove(name);
            log.Info("no container needs {0} any more; stopped resolving it", name);
        }
        if (names.Count == 0)
        {
            if (wanted.Remove(subscriber)) Context.Unwatch(subscriber);
        }
        else
        {
            if (!wanted.ContainsKey(subscriber)) Context.Watch(subscriber);
            wanted[subscriber] = names;
        }
    }

    private static string Sanitize(string name) =>
        new(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '.' ? c : '_').ToArray());
}

public sealed class Hostnames { }

public static class HostnamesActorExtensions
{
    public static AkkaConfigurationBuilder AddHostnamesActor(this AkkaConfigurationBuilder builder, IDnsResolver resolver, DnsSettings settings) =>
        builder.WithActors((system, registry) =>
            registry.Register<Hostnames>(system.ActorOf(HostnamesActor.Props(resolver, settings), "hostnames")));
}
