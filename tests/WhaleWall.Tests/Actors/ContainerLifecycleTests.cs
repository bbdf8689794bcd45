using System.Collections.Immutable;
using System.Net;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Actors.Nft;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using Xunit;
using static WhaleWall.Actors.Containers.ContainerInputs;
using static WhaleWall.Actors.Containers.ContainerLifecycleEvents;

namespace WhaleWall.Tests.Actors;

/// <summary>The container's lifecycle as data: inputs in, events out (no actor, no clock).</summary>
public class ContainerLifecycleTests
{
    private const string HostsRule = "output:\n  - hosts: [api.example.test]\n    proto: tcp\n    dst_ports: [443]\n";
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    private static ContainerLifecycle Fresh(LifecycleContext? context = null) =>
        ContainerLifecycle.New("a-id", context ?? new LifecycleContext(WhaleWall.Firewall.Decide.DecisionContext.Default, HasStore: false, HasHostnames: true));

    private static (ContainerLifecycle State, ImmutableArray<IContainerEvent> Events) Step(ContainerLifecycle s, object input)
    {
        var events = s.Decide(input, T0);
        foreach (var e in events) s = s.Apply(e);
        return (s, events);
    }

    private static ContainerLifecycle Run(ContainerLifecycle s, params object[] inputs)
    {
        foreach (var input in inputs) s = Step(s, input).State;
        return s;
    }

    /// <summary>Seeded from the journal, then confirmed by the kernel.</summary>
    private static ContainerLifecycle Enforced(ContainerFacts facts, LifecycleContext? context = null)
    {
        var s = Run(Fresh(context), new ContainerCommands.Seed(facts));
        return Run(s, new NftWriterEvents.Applied(facts.Id, s.Kernel.Version));
    }

    private static HostAddresses Host(DateTimeOffset expires) => new("api.example.test", [(IPAddress.Parse("198.19.0.10"), expires)]);

    [Fact]
    public void An_unchanged_dns_answer_with_a_later_expiry_is_a_new_wish_for_the_writer()
    {
        var s = Enforced(Facts.Container("a", "198.18.128.2", HostsRule));
        (s, var first) = Step(s, new HostnamesEvents.AddressesChanged(Host(T0.AddSeconds(35))));
        Assert.Single(first.OfType<FragmentSent>());

        var (_, renewal) = Step(s, new HostnamesEvents.AddressesChanged(Host(T0.AddSeconds(70))));
        var sent = Assert.Single(renewal.OfType<FragmentSent>());
        Assert.Contains(sent.Fragment.Elements, e => e.Set == "outh4" && e.Expires == T0.AddSeconds(70));
    }

    [Fact]
    public void The_same_answer_twice_is_not_sent_twice()
    {
        var s = Enforced(Facts.Container("a", "198.18.128.2", HostsRule));
        s = Run(s, new HostnamesEvents.AddressesChanged(Host(T0.AddSeconds(35))));
        var (_, again) = Step(s, new HostnamesEvents.AddressesChanged(Host(T0.AddSeconds(35))));
        Assert.Empty(again.OfType<FragmentSent>());
    }

    [Fact]
    public void A_death_takes_the_rules_away_at_once_without_waiting_for_docker_or_the_journal()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n");
        var s = Enforced(a, new LifecycleContext(WhaleWall.Firewall.Decide.DecisionContext.Default, HasStore: true, HasHostnames: false));
        var (after, events) = Step(s, new ContainerCommands.Refresh("die", new DockerEvent("container", "die", a.Id, 1), 42));
        var sent = Assert.Single(events.OfType<FragmentSent>());
        Assert.Empty(sent.Fragment.Elements);
        Assert.Equal(42, sent.EventSince);
        Assert.Contains(events, e => e is RecordRequested { Facts.Running: false }); // journalled, but not waited for
        Assert.Contains(events, e => e is InspectionStarted); // and Docker is asked to confirm
        Assert.True(events.IndexOf(sent) < events.IndexOf(events.OfType<StatePublished>().Last()));
        Assert.Equal(1, after.Losses);
    }

    [Fact]
    public void New_facts_reach_the_writer_at_once_and_the_journal_alongside()
    {
        // issue 13, "the kernel first": a new container's rules never wait for the store
        var a = Facts.Container("a", "198.18.128.2");
        var s = Fresh(new LifecycleContext(WhaleWall.Firewall.Decide.DecisionContext.Default, HasStore: true, HasHostnames: false));
        s = Run(s, new ContainerCommands.Refresh("start"));
        var (_, events) = Step(s, new Inspected(a, s.Inspection.Started));
        Assert.Single(events.OfType<RecordRequested>());
        Assert.Contains("managed4 198.18.128.2", Assert.Single(events.OfType<FragmentSent>()).Fragment.Elements.Select(e => e.Key));
    }

    [Fact]
    public void A_record_the_journal_never_answered_is_asked_again_and_only_its_own_answer_confirms_it()
    {
        // the store failed while the record was on its way (it went to dead letters): no answer comes
        var a = Facts.Container("a", "198.18.128.2");
        var s = Fresh(new LifecycleContext(WhaleWall.Firewall.Decide.DecisionContext.Default, HasStore: true, HasHostnames: false));
        s = Run(s, new ContainerCommands.Refresh("start"));
        (s, var first) = Step(s, new Inspected(a, s.Inspection.Started));
        var lost = Assert.Single(first.OfType<RecordRequested>());
        Assert.True(lost.AskAgainIn > TimeSpan.Zero);

        (s, var again) = Step(s, new RetryRecord(lost.Ticket));
        var resent = Assert.Single(again.OfType<RecordRequested>());
        Assert.Equal(a, resent.Facts);
        Assert.True(resent.Ticket > lost.Ticket);
        Assert.True(resent.AskAgainIn > lost.AskAgainIn); // backoff
        Assert.Empty(again.OfType<FragmentSent>());       // the kernel is not bothered

        // an answer to the lost ticket confirms nothing; the resent one's does, and no retry follows
        Assert.Empty(Step(s, new ContainerStoreEvents.Recorded(a.Id, lost.Ticket)).Events);
        s = Run(s, new ContainerStoreEvents.Recorded(a.Id, resent.Ticket));
        Assert.Equal(a, s.Journal.Recorded);
        Assert.Empty(Step(s, new RetryRecord(resent.Ticket)).Events);
    }

    [Fact]
    public void A_retry_of_a_record_overtaken_by_newer_facts_does_nothing_and_an_old_answer_confirms_nothing_newer()
    {
        var a = Facts.Container("a", "198.18.128.2");
        var s = Fresh(new LifecycleContext(WhaleWall.Firewall.Decide.DecisionContext.Default, HasStore: true, HasHostnames: false));
        s = Run(s, new ContainerCommands.Refresh("start"));
        (s, var first) = Step(s, new Inspected(a, s.Inspection.Started));
        var old = Assert.Single(first.OfType<RecordRequested>());

        var moved = Facts.Container("a", "198.18.128.9");
        s = Run(s, new ContainerCommands.Refresh("restart"));
        (s, var second) = Step(s, new Inspected(moved, s.Inspection.Started));
        var newer = Assert.Single(second.OfType<RecordRequested>());

        Assert.Empty(Step(s, new RetryRecord(old.Ticket)).Events);
        s = Run(s, new ContainerStoreEvents.Recorded(a.Id, old.Ticket));
        Assert.Null(s.Journal.Recorded);
        (_, var retried) = Step(s, new RetryRecord(newer.Ticket));
        Assert.Equal(moved, Assert.Single(retried.OfType<RecordRequested>()).Facts);
    }

    [Fact]
    public void A_managed_container_owns_its_address_at_once_and_its_port_sends_once_found()
    {
        var a = Facts.Container("a", "198.18.128.2") with
        {
            Networks = [new NetworkAttachment("n1", "n1-id", IPAddress.Parse("198.18.128.2"), null, 24, 128, "bridge", "02:42:c6:12:80:02", "br-n1")],
        };
        var binding = new LifecycleContext(WhaleWall.Firewall.Decide.DecisionContext.Default, HasStore: false, HasHostnames: false)
        {
            Binding = WhaleWall.Firewall.Compile.BindingSettings.Strict,
        };
        var s = Run(Fresh(binding), new ContainerCommands.Refresh("start"));
        var (found, events) = Step(s, new Inspected(a, s.Inspection.Started));
        var first = Assert.Single(events.OfType<FragmentSent>()).Fragment.BridgeOrEmpty.Select(e => e.Key).ToList();
        Assert.Contains("owned4 198.18.128.2", first);
        Assert.DoesNotContain(first, k => k.StartsWith("port4", StringComparison.Ordinal)); // its frames are dropped until the port is known
        Assert.Single(events.OfType<PortLookupStarted>());

        var (_, bound) = Step(found, new WhaleWall.Actors.Binding.BridgePortsEvents.PortFound("n1-id", "02:42:c6:12:80:02", new BoundPort(7, "veth7", "boot")));
        var keys = Assert.Single(bound.OfType<FragmentSent>()).Fragment.BridgeOrEmpty.Select(e => e.Key).ToList();
        Assert.Contains("port4 7 . 02:42:c6:12:80:02 . 198.18.128.2", keys);
        Assert.Contains("ports 7", keys);
    }

    [Fact]
    public void A_container_seeded_from_the_journal_looks_for_its_port_only_once_docker_confirms_it()
    {
        // kill -9, the container removed, a new one on its address with the same MAC: the
        // journal's container must not bind the newcomer's port (it would lend it its rules)
        var a = Facts.Container("a", "198.18.128.2") with
        {
            Networks = [new NetworkAttachment("n1", "n1-id", IPAddress.Parse("198.18.128.2"), null, 24, 128, "bridge", "02:42:c6:12:80:02", "br-n1")],
        };
        var binding = new LifecycleContext(WhaleWall.Firewall.Decide.DecisionContext.Default, HasStore: false, HasHostnames: false)
        {
            Binding = WhaleWall.Firewall.Compile.BindingSettings.Strict,
        };
        var (seeded, events) = Step(Fresh(binding), new ContainerCommands.Seed(a));
        Assert.Empty(events.OfType<PortLookupStarted>());
        var s = Run(seeded, new ContainerCommands.Refresh("reconcile"));
        var (_, confirmed) = Step(s, new Inspected(a, s.Inspection.Started));
        Assert.Single(confirmed.OfType<PortLookupStarted>());
    }

    [Fact]
    public void A_disconnect_takes_that_networks_addresses_away_at_once()
    {
        var a = Facts.Container("a", "198.18.128.2") with
        {
            Networks = [new NetworkAttachment("n1", "n1-id", IPAddress.Parse("198.18.128.2"), null),
                        new NetworkAttachment("n2", "n2-id", IPAddress.Parse("198.18.129.2"), null)],
        };
        var s = Enforced(a);
        var (_, events) = Step(s, new ContainerCommands.Refresh("disconnect", new DockerEvent("network", "disconnect", a.Id, 1, "n2-id")));
        var keys = Assert.Single(events.OfType<FragmentSent>()).Fragment.Elements.Select(e => e.Key).ToList();
        Assert.Contains("managed4 198.18.128.2", keys);
        Assert.DoesNotContain(keys, k => k.Contains("198.18.129.2"));
    }

    [Fact]
    public void An_endpoint_answer_asked_for_before_a_death_does_not_revive_the_rules()
    {
        var a = Facts.Container("a", "198.18.128.2");
        var s = Enforced(a);
        (s, var connect) = Step(s, new ContainerCommands.Refresh("connect", new DockerEvent("network", "connect", a.Id, 1, "net-id")));
        var lookup = Assert.Single(connect.OfType<EndpointLookupStarted>());
        s = Run(s, new ContainerCommands.Refresh("die", new DockerEvent("container", "die", a.Id, 2)));
        var (_, late) = Step(s, new EndpointFound(a.Networks[0], lookup.InspectionsStarted, lookup.Losses));
        Assert.Empty(late);
    }

    [Fact]
    public void An_endpoint_answer_asked_for_before_a_disconnect_of_its_network_does_not_put_the_network_back()
    {
        // connect n2, then disconnect n2 before the network's answer (taken before the disconnect) arrives:
        // the address Docker just took back, and may hand to another container, must not stay allowed
        var a = Facts.Container("a", "198.18.128.2");
        var s = Enforced(a);
        (s, var connect) = Step(s, new ContainerCommands.Refresh("connect", new DockerEvent("network", "connect", a.Id, 1, "n2-id")));
        var lookup = Assert.Single(connect.OfType<EndpointLookupStarted>());
        s = Run(s, new ContainerCommands.Refresh("disconnect", new DockerEvent("network", "disconnect", a.Id, 2, "n2-id")));
        var stale = new NetworkAttachment("n2", "n2-id", IPAddress.Parse("198.18.129.2"), null);
        var (after, late) = Step(s, new EndpointFound(stale, lookup.InspectionsStarted, lookup.Losses));
        Assert.Empty(late);
        Assert.DoesNotContain(after.Facts!.Networks, n => n.Id == "n2-id");

        // a lookup asked for after the disconnect (the container connected again) is taken
        (s, var again) = Step(after, new ContainerCommands.Refresh("connect", new DockerEvent("network", "connect", a.Id, 3, "n2-id")));
        var second = Assert.Single(again.OfType<EndpointLookupStarted>());
        var (_, taken) = Step(s, new EndpointFound(stale, second.InspectionsStarted, second.Losses));
        Assert.Contains(Assert.Single(taken.OfType<FragmentSent>()).Fragment.Elements, e => e.Key == "managed4 198.18.129.2");
    }

    [Fact]
    public void A_connect_accepts_only_network_answers_asked_for_after_the_containers_previous_event()
    {
        var labels = new Dictionary<string, string> { [WhaleWall.Firewall.Labels.LabelKeys.Enabled] = "true", ["name"] = "a" };
        var s = Fresh();
        (s, var first) = Step(s, new ContainerCommands.Refresh("connect", new DockerEvent("network", "connect", "a-id", 1, "net-id"), 1_000));
        Assert.Empty(first.OfType<EndpointLookupStarted>()); // nothing known of it yet: its inspection decides
        s = Run(s, new ContainerCommands.Refresh("create", new DockerEvent("container", "create", "a-id", 2, null, labels), 2_000));
        (s, var connect) = Step(s, new ContainerCommands.Refresh("connect", new DockerEvent("network", "connect", "a-id", 3, "net-id"), 3_000));
        Assert.Equal(2_000, Assert.Single(connect.OfType<EndpointLookupStarted>()).SentAfter);
        s = Run(s, new ContainerCommands.Refresh("disconnect", new DockerEvent("network", "disconnect", "a-id", 4, "net-id"), 4_000));
        var (_, again) = Step(s, new ContainerCommands.Refresh("connect", new DockerEvent("network", "connect", "a-id", 5, "net-id"), 5_000));
        Assert.Equal(4_000, Assert.Single(again.OfType<EndpointLookupStarted>()).SentAfter);
    }

    [Fact]
    public void A_connect_as_the_first_event_seen_shares_no_earlier_network_answer()
    {
        var a = Facts.Container("a", "198.18.128.2");
        var s = Enforced(a); // seeded from the journal: no event seen
        var (_, connect) = Step(s, new ContainerCommands.Refresh("connect", new DockerEvent("network", "connect", a.Id, 1, "net-id"), 7_000));
        Assert.Equal(7_000, Assert.Single(connect.OfType<EndpointLookupStarted>()).SentAfter);
    }

    [Fact]
    public void Label_errors_are_decided_once_not_at_every_event()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [nope]\n");
        var s = Fresh();
        (s, var first) = Step(s, new ContainerCommands.Seed(a));
        Assert.Single(first.OfType<PolicyDecided>());
        foreach (var input in new object[]
                 {
                     new PeerDirectoryEvents.PeersChanged([]),
                     new ContainerCommands.Refresh("update"),
                     new Inspected(a with { Labels = a.Labels }, 1),
                     new NftWriterEvents.Applied(a.Id, s.Kernel.Version),
                 })
        {
            (s, var events) = Step(s, input);
            Assert.Empty(events.OfType<PolicyDecided>());
        }
        var (_, relabelled) = Step(s with { Inspection = s.Inspection with { Running = false } },
            new Inspected(a with { Labels = a.Labels.SetItem("whalewall.rules", "output: []\n") }, s.Inspection.Started));
        Assert.Single(relabelled.OfType<PolicyDecided>());
    }

    [Fact]
    public void A_gone_container_tells_the_writer_even_if_it_never_sent_anything()
    {
        var s = Run(Fresh(), new ContainerCommands.Refresh("start-up"));
        var (after, events) = Step(s, new Inspected(null, s.Inspection.Started));
        Assert.Empty(Assert.Single(events.OfType<FragmentSent>()).Fragment.Elements);
        Assert.IsType<ContainerGone>(events.Last());
        Assert.True(after.Gone);
        Assert.Empty(after.Decide(new ContainerCommands.Refresh("late event"), T0));
    }

    [Fact]
    public void A_destroy_removes_the_container_without_asking_docker_and_ignores_the_inspection_still_out()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n");
        var s = Enforced(a);
        s = Run(s, new ContainerCommands.Refresh("container die", new DockerEvent("container", "die", a.Id, 1), 5_000));
        Assert.True(s.Inspection.Running);
        var (after, events) = Step(s, new ContainerCommands.Refresh("container destroy", new DockerEvent("container", "destroy", a.Id, 2), 6_000));
        Assert.Empty(events.Where(e => e is InspectionStarted or InspectionQueued));
        Assert.Empty(Assert.Single(events.OfType<FragmentSent>()).Fragment.Elements);
        Assert.IsType<ContainerGone>(events.Last());
        Assert.True(after.Gone);
        // the inspection sent at `die` answers with the container as it was then: too late to matter
        Assert.Empty(after.Decide(new Inspected(a with { Running = false }, after.Inspection.Started), T0));
    }

    [Fact]
    public void A_destroy_as_the_only_event_seen_still_empties_the_kernel()
    {
        // the stream's `die` was lost (or the daemon was not watching): `destroy` alone removes the rules
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n");
        var s = Enforced(a);
        var (_, events) = Step(s, new ContainerCommands.Refresh("container destroy", new DockerEvent("container", "destroy", a.Id, 2), 6_000));
        var sent = Assert.Single(events.OfType<FragmentSent>());
        Assert.Empty(sent.Fragment.Elements);
        Assert.True(sent.Version > s.Kernel.Version);
    }

    [Fact]
    public void The_published_state_follows_the_kernels_answers()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n");
        var s = Run(Fresh(), new ContainerCommands.Seed(a));
        Assert.Equal(ContainerState.Enforced, s.Published.State);
        (s, var refused) = Step(s, new NftWriterEvents.Rejected(a.Id, s.Kernel.Version, "No such file or directory"));
        var published = Assert.Single(refused.OfType<StatePublished>());
        Assert.Equal(ContainerState.Rejected, published.State);
        Assert.Contains(published.Reasons, r => r.Contains("No such file or directory"));
        Assert.Empty(refused.OfType<FragmentSent>()); // the writer keeps it drop-all and retries

        var (_, taken) = Step(s, new NftWriterEvents.Applied(a.Id, s.Kernel.Version));
        Assert.Equal(ContainerState.Enforced, Assert.Single(taken.OfType<StatePublished>()).State);
    }

    [Fact]
    public void A_stale_inspection_is_ignored_and_asked_again()
    {
        var a = Facts.Container("a", "198.18.128.2");
        var s = Run(Fresh(), new ContainerCommands.Refresh("start"));
        s = Run(s, new ContainerCommands.Refresh("die", new DockerEvent("container", "die", a.Id, 1)));
        var (_, events) = Step(s, new Inspected(a, s.Inspection.Started)); // answered before the die was seen
        Assert.Equal([typeof(InspectionFinished), typeof(InspectionStarted)], events.Select(e => e.GetType()));
    }

    [Fact]
    public void A_host_network_container_is_unfilterable_and_puts_nothing_in_the_sets()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n") with
        {
            NetworkMode = "host",
            Networks = [new NetworkAttachment("host", "host-id", null, null, Driver: "host")],
        };
        var (s, events) = Step(Fresh(), new ContainerCommands.Seed(a));
        Assert.Empty(Assert.Single(events.OfType<FragmentSent>()).Fragment.Elements);
        var published = Assert.Single(events.OfType<StatePublished>());
        Assert.Equal(ContainerState.Unfilterable, published.State);
        Assert.Contains(published.Reasons, r => r.StartsWith("unfilterable:"));

        // a macvlan attachment next to a bridge one: the bridge part is enforced, the container still reported
        var b = Facts.Container("b", "198.18.128.3", "output:\n  - ips: [198.19.0.10]\n") with
        {
            Networks = [new NetworkAttachment("net", "net-id", IPAddress.Parse("198.18.128.3"), null),
                        new NetworkAttachment("mac", "mac-id", IPAddress.Parse("198.18.140.3"), null, Driver: "macvlan")],
        };
        (_, events) = Step(Fresh(), new ContainerCommands.Seed(b));
        var keys = Assert.Single(events.OfType<FragmentSent>()).Fragment.Elements.Select(e => e.Key).ToList();
        Assert.Contains("managed4 198.18.128.3", keys);
        Assert.DoesNotContain(keys, k => k.Contains("198.18.140.3"));
        Assert.Equal(ContainerState.Unfilterable, events.OfType<StatePublished>().Single().State);
    }
}
