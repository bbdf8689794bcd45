using System.Collections.Immutable;
using System.Net;
using Akka.Actor;
using Akka.Event;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Hostnames;

/// <summary>Keeps one name resolved: asks DNS, trusts each address for its TTL (clamped) plus
/// a grace, asks again at half the TTL, and on failure keeps the last addresses until their
/// grace ends while retrying with backoff. Subscribers get every change.</summary>
public sealed class HostnameResolverActor : ReceiveActor, IWithTimers
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    private readonly string name;
    private readonly IDnsResolver resolver;
    private readonly DnsSettings settings;
    private readonly ILoggingAdapter log = Context.GetLogger();
    private readonly HashSet<IActorRef> subscribers = [];
    private ImmutableArray<(IPAddress Address, DateTimeOffset Expires)> addresses = [];
    private int failures;

    public ITimerScheduler Timers { get; set; } = null!;

    public HostnameResolverActor(string name, IDnsResolver resolver, DnsSettings settings)
    {
        this.name = name;
        this.resolver = resolver;
        this.settings = settings;

        Receive<AddSubscriber>(s =>
        {
            subscribers.Add(s.Subscriber);
            s.Subscriber.Tell(new HostnamesEvents.AddressesChanged(Current));
        });
        Receive<Resolve>(_ => resolver.ResolveAsync(name, CancellationToken.None).PipeTo(Self,
            failure: e => DnsAnswer.Failed(e.Message)));
        Receive<DnsAnswer>(OnAnswer);
        Receive<Expire>(_ => Prune());
    }

    public static Props Props(string name, IDnsResolver resolver, DnsSettings settings) =>
        Akka.Actor.Props.Create(() => new HostnameResolverActor(name, resolver, settings));

    protected override void PreStart() => Self.Tell(Resolve.Instance);

    private DateTimeOffset Now => Context.System.Scheduler.Now;

    private HostAddresses Current => new(name, addresses);

    private void OnAnswer(DnsAnswer answer)
    {
        if (answer.Error is { } error)
        {
            failures++;
            var retry = TimeSpan.FromSeconds(Math.Min(MaxBackoff.TotalSeconds, Math.Pow(2, Math.Min(failures, 10)) / 2));
            log.Warning("DNS for {0} failed ({1}); keeping {2} known addresses until their grace ends, retrying in {3:0.#} s",
                name, error, addresses.Length, retry.TotalSeconds);
            Timers.StartSingleTimer(Resolve.Instance, Resolve.Instance, retry);
            Prune();
            return;
        }
        failures = 0;
        var now = Now;
        var fresh = answer.Addresses
            .GroupBy(a => a.Address)
            .Select(g => (Address: g.Key, Ttl: Clamp(g.Min(a => a.Ttl))))
            .OrderBy(a => a.Address.ToString(), StringComparer.Ordinal)
            .Take(settings.MaxAddresses)
            .ToList();
        if (answer.Addresses.Length > settings.MaxAddresses)
            log.Warning("{0} has {1} addresses; keeping the first {2}", name, answer.Addresses.Length, settings.MaxAddresses);
        // addresses that left the answer keep their old expiry and fade out by themselves
        var kept = addresses.Where(a => fresh.All(f => !f.Address.Equals(a.Address)) && a.Expires > now);
        addresses = [.. fresh.Select(f => (f.Address, now + f.Ttl + settings.Grace)).Concat(kept)];
        var next = fresh.Count == 0 ? settings.MinTtl : fresh.Min(f => f.Ttl);
        Timers.StartSingleTimer(Resolve.Instance, Resolve.Instance, TimeSpan.FromTicks(Math.Max(next.Ticks / 2, TimeSpan.FromMilliseconds(250).Ticks)));
        ScheduleExpiry();
        Publish();
    }

    private void Prune()
    {
        var now = Now;
        var alive = addresses.Where(a => a.Expires > now).ToImmutableArray();
        if (alive.Length != addresses.Length)
        {
            log.Info("{0}: {1} addresses expired", name, addresses.Length - alive.Length);
            addresses = alive;
            Publish();
        }
        ScheduleExpiry();
    }

    private void ScheduleExpiry()
    {
        if (addresses.IsEmpty) return;
        var soonest = addresses.Min(a => a.Expires) - Now;
        Timers.StartSingleTimer(Expire.Instance, Expire.Instance, soonest < TimeSpan.Zero ? TimeSpan.Zero : soonest);
    }

    private void Publish()
    {
        var message = new HostnamesEvents.AddressesChanged(Current);
        foreach (var s in subscribers) s.Tell(message);
        Context.Parent.Tell(message);
    }

    private TimeSpan Clamp(TimeSpan ttl) =>
        ttl < settings.MinTtl ? settings.MinTtl : ttl > settings.MaxTtl ? settings.MaxTtl : ttl;

    public sealed record AddSubscriber(IActorRef Subscriber);

    private sealed class Resolve
    {
        public static readonly Resolve Instance = new();
    }

    private sealed class Expire
    {
        public static readonly Expire Instance = new();
    }
}
