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
    private readonly Dictionary<IActorRef, string> containers = new();
    private readonly Dictionary<string, WhaleWall.Firewall.Policy.HostAddresses> current = new();
    private readonly IHostnameReport? report;
    private bool reportScheduled;
    private long generation;

    public HostnamesActor(IDnsResolver resolver, DnsSettings settings, IHostnameReport? report = null)
    {
        this.resolver = resolver;
        this.settings = settings;
        this.report = report;
        Receive<Subscribe>(s =>
        {
            if (s.Container.Length > 0) containers[Sender] = s.Container;
            Change(Sender, s.Names.ToHashSet());
            ScheduleReport();
        });
        Receive<Terminated>(t =>
        {
            Change(t.ActorRef, []);
            containers.Remove(t.ActorRef);
            ScheduleReport();
        });
        Receive<HostnamesEvents.AddressesChanged>(a =>
        {
            if (!resolvers.ContainsKey(a.Host.Name)) return;
            current[a.Host.Name] = a.Host;
            ScheduleReport();
        });
        Receive<WriteReport>(_ => WriteNow());
    }

    public static Props Props(IDnsResolver resolver, DnsSettings settings, IHostnameReport? report = null) =>
        Akka.Actor.Props.Create(() => new HostnamesActor(resolver, settings, report));

    /// <summary>At most one report write per second.</summary>
    private void ScheduleReport()
    {
        if (report is null || reportScheduled) return;
        reportScheduled = true;
        Context.System.Scheduler.ScheduleTellOnce(TimeSpan.FromSeconds(1), Self, WriteReport.Instance, Self);
    }

    private void WriteNow()
    {
        reportScheduled = false;
        var entries = subscribers.Keys.Order(StringComparer.Ordinal).Select(name => new HostnameReportEntry(name,
            current.TryGetValue(name, out var h) ? h.Addresses : [],
            [.. subscribers[name].Select(s => containers.GetValueOrDefault(s, s.Path.Name)).Order(StringComparer.Ordinal)])).ToList();
        try { report!.Write(entries); }
        catch (Exception e) { log.Warning("cannot write the hostname report ({0})", e.Message); }
    }

    private sealed class WriteReport
    {
        public static readonly WriteReport Instance = new();
    }

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
            current.Remove(name);
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
    public static AkkaConfigurationBuilder AddHostnamesActor(this AkkaConfigurationBuilder builder, IDnsResolver resolver, DnsSettings settings,
        IHostnameReport? report = null) =>
        builder.WithActors((system, registry) =>
            registry.Register<Hostnames>(system.ActorOf(HostnamesActor.Props(resolver, settings, report), "hostnames")));
}
