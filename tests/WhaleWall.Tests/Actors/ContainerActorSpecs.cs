using System.Collections.Immutable;
using System.Net;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using Xunit;
using static WhaleWall.Actors.Nft.NftWriterCommands;

namespace WhaleWall.Tests.Actors;

public class ContainerActorSpecs : TestKit
{
    private readonly FakeDockerSource docker = new();

    private (IActorRef Actor, Akka.TestKit.TestProbe Writer) Start(string id)
    {
        var writer = CreateTestProbe();
        var peers = Sys.ActorOf(Props.Create<PeerDirectoryActor>());
        var actor = ChildActorOf(ContainerActor.Props(id, docker, writer, peers));
        return (actor, writer);
    }

    private static IEnumerable<string> Keys(Program p) => p.Fragment.Elements.Where(e => !Facts.IsDropCounter(e)).Select(e => e.Key);

    [Fact]
    public void Opted_in_container_gets_its_policy_programmed()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n    proto: tcp\n    dst_ports: [80]\n");
        docker.Containers[a.Id] = a;
        var (actor, writer) = Start(a.Id);
        actor.Tell(new ContainerCommands.Refresh("test"));
        var program = writer.ExpectMsg<Program>();
        Assert.Equal(["managed4 198.18.128.2", "out4 198.18.128.2 . 198.19.0.10 . 6 . 0-65535 . 80"], Keys(program));
    }

    [Fact]
    public void Container_with_invalid_labels_is_programmed_drop_all()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n    port: 80\n");
        docker.Containers[a.Id] = a;
        var (actor, writer) = Start(a.Id);
        actor.Tell(new ContainerCommands.Refresh("test"));
        Assert.Equal(["managed4 198.18.128.2"], Keys(writer.ExpectMsg<Program>()));
    }

    [Fact]
    public void Removed_container_loses_its_rules_and_reports_gone()
    {
        var a = Facts.Container("a", "198.18.128.2");
        docker.Containers[a.Id] = a;
        var (actor, writer) = Start(a.Id);
        actor.Tell(new ContainerCommands.Refresh("test"));
        writer.ExpectMsg<Program>();
        docker.Containers.TryRemove(a.Id, out _);
        actor.Tell(new ContainerCommands.Refresh("destroy"));
        Assert.Empty(writer.ExpectMsg<Program>().Fragment.Elements);
        ExpectMsg(new ContainerEvents.Gone(a.Id));
    }

    [Fact]
    public void Rules_are_programmed_on_network_connect_while_docker_still_holds_the_container()
    {
        var labels = new Dictionary<string, string> { [LabelKeys.Enabled] = "true", ["name"] = "a" };
        docker.InspectGate = new TaskCompletionSource(); // inspect blocks, as during `docker start`
        docker.Endpoints["a-id"] = new NetworkAttachment("net", "net-id", IPAddress.Parse("198.18.128.7"), null);
        var (actor, writer) = Start("a-id");
        actor.Tell(new ContainerCommands.Refresh("create", new DockerEvent("container", "create", "a-id", 1, null, labels)));
        actor.Tell(new ContainerCommands.Refresh("connect", new DockerEvent("network", "connect", "a-id", 2, "net-id")));
        // the container created (not running yet) reports that it holds nothing, then its address comes with the network
        Assert.Empty(writer.ExpectMsg<Program>().Fragment.Elements);
        Assert.Equal(["managed4 198.18.128.7"], Keys(writer.ExpectMsg<Program>()));
        docker.InspectGate.SetResult();
    }

    [Fact]
    public void A_death_reaches_the_writer_without_waiting_for_the_inspection_it_starts()
    {
        var a = Facts.Container("a", "198.18.128.2");
        docker.Containers[a.Id] = a;
        var (actor, writer) = Start(a.Id);
        actor.Tell(new ContainerCommands.Refresh("test"));
        writer.ExpectMsg<Program>();
        docker.InspectHoldsCaller = TimeSpan.FromSeconds(3);
        actor.Tell(new ContainerCommands.Refresh("die", new DockerEvent("container", "die", a.Id, 2), System.Diagnostics.Stopwatch.GetTimestamp()));
        Assert.Empty(writer.ExpectMsg<Program>(TimeSpan.FromSeconds(1)).Fragment.Elements);
    }

    [Fact]
    public void Kernel_rejection_leaves_the_fallback_and_the_retry_to_the_writer()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n");
        docker.Containers[a.Id] = a;
        var (actor, writer) = Start(a.Id);
        actor.Tell(new ContainerCommands.Refresh("test"));
        var program = writer.ExpectMsg<Program>();
        actor.Tell(new NftWriterEvents.Rejected(a.Id, program.Version, "File exists"));
        writer.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // the writer made it drop-all and retries the same wish itself
    }

    [Fact]
    public void Container_rule_follows_the_named_container_when_it_appears_later()
    {
        var peers = Sys.ActorOf(Props.Create<PeerDirectoryActor>());
        var writer = CreateTestProbe();
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - container: b\n    proto: tcp\n    dst_ports: [756]\n");
        var b = Facts.Container("b", "198.18.128.3", enabled: false);
        docker.Containers[a.Id] = a;
        var actorA = Sys.ActorOf(ContainerActor.Props(a.Id, docker, writer, peers));
        actorA.Tell(new ContainerCommands.Refresh("test"));
        Assert.Equal(["managed4 198.18.128.2"], Keys(writer.ExpectMsg<Program>()));

        docker.Containers[b.Id] = b;
        var actorB = Sys.ActorOf(ContainerActor.Props(b.Id, docker, CreateTestProbe(), peers));
        actorB.Tell(new ContainerCommands.Refresh("b created"));
        Assert.Contains("peer4 198.18.128.2 . 198.18.128.3 . 6 . 0-65535 . 756", Keys(writer.ExpectMsg<Program>()));

        docker.Containers.TryRemove(b.Id, out _);
        actorB.Tell(new ContainerCommands.Refresh("b removed"));
        Assert.Equal(["managed4 198.18.128.2"], Keys(writer.ExpectMsg<Program>()));
    }
}

/// <summary>Issue 12 (1): the actor used to compare new elements with the last ones sent without
/// their expiry, so an unchanged DNS answer never reached the writer and the kernel's timeouts
/// ran out after TTL + grace.</summary>
public class ContainerRenewalSpecs : TestKit
{
    [Fact]
    public void An_unchanged_dns_answer_reaches_the_writer_so_the_kernel_timeout_is_renewed()
    {
        var docker = new FakeDockerSource();
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - hosts: [api.example.test]\n    proto: tcp\n    dst_ports: [443]\n");
        docker.Containers[a.Id] = a;
        var writer = CreateTestProbe();
        var hostnames = CreateTestProbe();
        var peers = Sys.ActorOf(Props.Create<PeerDirectoryActor>());
        var actor = Sys.ActorOf(ContainerActor.Props(a.Id, docker, writer, peers, hostnames: hostnames));
        actor.Tell(new ContainerCommands.Refresh("start"));
        hostnames.ExpectMsg<WhaleWall.Actors.Hostnames.HostnamesCommands.Subscribe>();
        writer.ExpectMsg<Program>();

        var t0 = DateTimeOffset.UtcNow;
        HostAddresses Answer(int seconds) => new("api.example.test", [(IPAddress.Parse("198.19.0.10"), t0.AddSeconds(seconds))]);
        actor.Tell(new WhaleWall.Actors.Hostnames.HostnamesEvents.AddressesChanged(Answer(35)));
        var first = writer.ExpectMsg<Program>();
        actor.Tell(new WhaleWall.Actors.Hostnames.HostnamesEvents.AddressesChanged(Answer(70)));
        var renewed = writer.ExpectMsg<Program>();
        Assert.Contains(renewed.Fragment.Elements, e => e.Set == "outh4" && e.Expires == t0.AddSeconds(70));
        Assert.True(renewed.Version > first.Version);
    }
}

/// <summary>Issue 12 (8): removals lagged because the actor waited for Docker's inspection (which
/// Docker answers only once it releases the container, i.e. after the removal) and for the journal
/// before telling the writer. A death takes the rules away from the event itself.</summary>
public class ContainerRemovalSpecs : TestKit
{
    [Fact]
    public void A_dying_container_loses_its_rules_while_docker_and_the_journal_are_still_busy()
    {
        var docker = new FakeDockerSource();
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n");
        docker.Containers[a.Id] = a;
        var writer = CreateTestProbe();
        var store = CreateTestProbe(); // a journal that never answers
        var peers = Sys.ActorOf(Props.Create<PeerDirectoryActor>());
        var actor = Sys.ActorOf(ContainerActor.Props(a.Id, docker, writer, peers, store: store));
        actor.Tell(new ContainerCommands.Seed(a)); // replayed from the journal: enforced at once
        Assert.NotEmpty(writer.ExpectMsg<Program>().Fragment.Elements);

        docker.InspectGate = new TaskCompletionSource(); // Docker is busy removing it
        actor.Tell(new ContainerCommands.Refresh("die", new DockerEvent("container", "die", a.Id, 1)));
        Assert.Empty(writer.ExpectMsg<Program>(TimeSpan.FromMilliseconds(500)).Fragment.Elements);
        docker.InspectGate.SetResult();
    }
}

public class ContainerUnfilterableSpecs : TestKit
{
    [Fact]
    public void An_unfilterable_container_is_warned_about_once_not_at_every_event()
    {
        var docker = new FakeDockerSource();
        var a = Facts.Container("a", "198.18.128.2") with
        {
            NetworkMode = "host",
            Networks = [new NetworkAttachment("host", "host-id", null, null, Driver: "host")],
        };
        docker.Containers[a.Id] = a;
        var peers = Sys.ActorOf(Props.Create<PeerDirectoryActor>());
        var actor = Sys.ActorOf(ContainerActor.Props(a.Id, docker, CreateTestProbe(), peers));
        EventFilter.Warning(contains: "UNFILTERABLE").Expect(1, TimeSpan.FromSeconds(3), () =>
        {
            actor.Tell(new ContainerCommands.Refresh("start"));
            actor.Tell(new ContainerCommands.Refresh("update"));
            actor.Tell(new ContainerCommands.Refresh("rename"));
        });
    }
}
