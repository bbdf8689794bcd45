using System.Collections.Immutable;
using System.Net;
using System.Text;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Policy;
using Xunit;
using static WhaleWall.Actors.State.StoredEvents;

namespace WhaleWall.Tests.State;

/// <summary>The journal format: explicit versioned names, round trips, a fixed v2 text that must
/// keep reading (a later change of the format breaks this test, not users), and the v1 texts
/// earlier versions wrote, read through the upcaster.</summary>
public class StateSerializerTests() : TestKit(PersistenceConfig.Config(new StateOptions("sqlite", Path.GetTempPath(), "unused")))
{
    private StateSerializer Serializer => (StateSerializer)Sys.Serialization.FindSerializerForType(typeof(ContainerRecorded));

    /// <summary>Facts with every field set.</summary>
    public static ContainerFacts Rich() => new(
        "0123456789abcdef", "web", true,
        ImmutableDictionary<string, string>.Empty.Add("whalewall.enabled", "true").Add("whalewall.rules", "output:\n  - ips: [198.19.0.10]\n"),
        [new NetworkAttachment("front", "net-1", IPAddress.Parse("198.18.128.2"), IPAddress.Parse("2001:db8::2"), 24, 64, "bridge", "02:42:c6:12:80:02"),
         new NetworkAttachment("back", "net-2", IPAddress.Parse("198.18.129.2"), null, 25, 128, "overlay", "02:42:c6:12:81:02")],
        [new PublishedPort(80, L4Proto.Tcp, "0.0.0.0", 8080), new PublishedPort(53, L4Proto.Udp, "127.0.0.1", 5353)],
        [IPAddress.Parse("198.19.0.53"), IPAddress.Parse("2001:db8:19::53")],
        "busybox:latest",
        "front");

    /// <summary>What a v1 entry could hold (the fields v1 stored; the others at their defaults).</summary>
    public static ContainerFacts RichV1() => new(
        "0123456789abcdef", "web", true,
        ImmutableDictionary<string, string>.Empty.Add("whalewall.enabled", "true").Add("whalewall.rules", "output:\n  - ips: [198.19.0.10]\n"),
        [new NetworkAttachment("front", "net-1", IPAddress.Parse("198.18.128.2"), IPAddress.Parse("2001:db8::2")),
         new NetworkAttachment("back", "net-2", IPAddress.Parse("198.18.129.2"), null)],
        [new PublishedPort(80, L4Proto.Tcp, "0.0.0.0", 8080), new PublishedPort(53, L4Proto.Udp, "127.0.0.1", 5353)]);

    public static DockerNetwork GatewayNetwork() =>
        new("gw", "gw-id", "bridge", [Compiler.Subnet(AddressRange.Single(IPAddress.Parse("198.18.130.0")), 24)]);

    [Fact]
    public void Every_stored_type_has_a_versioned_name_and_round_trips()
    {
        var state = ContainerStoreState.Empty.Apply(new ContainerRecorded(Rich(), ["e1"], 7)).Apply(new EventsProcessed(99))
            .Apply(new NetworksRecorded([GatewayNetwork()], 5));
        object[] values = [new ContainerRecorded(Rich(), ["e1", "e2"], 7), new ContainerForgotten("x", 8), new NetworksRecorded([GatewayNetwork()], 5),
            new EventsProcessed(99), new StateCleared(9), state];
        string[] names = [StateSerializer.Recorded, StateSerializer.Forgotten, StateSerializer.Networks, StateSerializer.Processed,
            StateSerializer.Cleared, StateSerializer.StateSnapshot];
        Assert.IsType<StateSerializer>(Sys.Serialization.FindSerializerFor(state));
        Assert.IsType<StateSerializer>(Sys.Serialization.FindSerializerFor(values[2]));
        foreach (var (value, name) in values.Zip(names))
        {
            Assert.Equal(name, Serializer.Manifest(value));
            Assert.Matches(@"\.v[0-9]+$", name);
            var back = Serializer.FromBinary(Serializer.ToBinary(value), name);
            Assert.True(Structural.Equal(value, back), Structural.Difference(value, back, name));
        }
        Assert.EndsWith(".v3", StateSerializer.Recorded);
        Assert.EndsWith(".v3", StateSerializer.StateSnapshot);
    }

    // Frozen text: if this test fails, the format changed; add a .v3 (and an upcaster) instead of editing .v2.
    private const string V2 = """{"facts":{"id":"0123456789abcdef","name":"web","running":true,"labels":{"whalewall.enabled":"true","whalewall.rules":"output:\n  - ips: [198.19.0.10]\n"},"networks":[{"name":"front","id":"net-1","ipv4":"198.18.128.2","ipv6":"2001:db8::2","ipv4_prefix":24,"ipv6_prefix":64,"driver":"bridge","mac":"02:42:c6:12:80:02"},{"name":"back","id":"net-2","ipv4":"198.18.129.2","ipv6":null,"ipv4_prefix":25,"ipv6_prefix":128,"driver":"overlay","mac":"02:42:c6:12:81:02"}],"ports":[{"container_port":80,"proto":"tcp","host_ip":"0.0.0.0","host_port":8080},{"container_port":53,"proto":"udp","host_ip":"127.0.0.1","host_port":5353}],"dns_servers":["198.19.0.53","2001:db8:19::53"],"image":"busybox:latest","network_mode":"front"},"errors":["e1"],"at":7}""";

    [Fact]
    public void A_v2_event_reads_back_through_the_upcaster_without_bridge_ports()
    {
        var read = (ContainerRecorded)Serializer.FromBinary(Encoding.UTF8.GetBytes(V2), "container-recorded.v2");
        Assert.True(Structural.Equal(Rich(), read.Facts), Structural.Difference(Rich(), read.Facts, "facts"));
        Assert.Equal(["e1"], read.Errors.ToArray());
        Assert.Equal(StateSerializer.Recorded, Serializer.Manifest(read));
    }

    // Frozen text: if this test fails, the format changed; add a .v4 (and an upcaster) instead of editing .v3.
    private const string V3 = """{"facts":{"id":"0123456789abcdef","name":"web","running":true,"labels":{"whalewall.enabled":"true","whalewall.rules":"output:\n  - ips: [198.19.0.10]\n"},"networks":[{"name":"front","id":"net-1","ipv4":"198.18.128.2","ipv6":"2001:db8::2","ipv4_prefix":24,"ipv6_prefix":64,"driver":"bridge","mac":"02:42:c6:12:80:02","bridge":"br-front","port":{"index":17,"name":"veth1a2b3c","boot":"boot-1"}},{"name":"back","id":"net-2","ipv4":"198.18.129.2","ipv6":null,"ipv4_prefix":25,"ipv6_prefix":128,"driver":"overlay","mac":"02:42:c6:12:81:02","bridge":null,"port":null}],"ports":[{"container_port":80,"proto":"tcp","host_ip":"0.0.0.0","host_port":8080},{"container_port":53,"proto":"udp","host_ip":"127.0.0.1","host_port":5353}],"dns_servers":["198.19.0.53","2001:db8:19::53"],"image":"busybox:latest","network_mode":"front"},"errors":["e1"],"at":7}""";

    private static ContainerFacts RichV3() => Rich() with
    {
        Networks = Rich().Networks.SetItem(0, Rich().Networks[0] with { Bridge = "br-front", Port = new BoundPort(17, "veth1a2b3c", "boot-1") }),
    };

    [Fact]
    public void A_v3_event_as_written_by_this_version_reads_back()
    {
        Assert.Equal(V3, Encoding.UTF8.GetString(Serializer.ToBinary(new ContainerRecorded(RichV3(), ["e1"], 7))));
        var read = (ContainerRecorded)Serializer.FromBinary(Encoding.UTF8.GetBytes(V3), StateSerializer.Recorded);
        Assert.True(Structural.Equal(RichV3(), read.Facts), Structural.Difference(RichV3(), read.Facts, "facts"));
        Assert.Equal(["e1"], read.Errors.ToArray());
    }

    [Fact]
    public void A_v2_entry_without_a_field_is_an_error_not_a_default()
    {
        var missing = V2.Replace(",\"image\":\"busybox:latest\"", "");
        Assert.NotEqual(V2, missing);
        var e = Assert.Throws<System.Runtime.Serialization.SerializationException>(() =>
            Serializer.FromBinary(Encoding.UTF8.GetBytes(missing), "container-recorded.v2"));
        Assert.Contains("\"image\"", e.Message);
    }

    [Fact]
    public void A_v1_event_as_written_by_earlier_versions_reads_back_through_the_upcaster()
    {
        // Frozen text of what the v1 writer produced (never edit).
        const string v1 = """{"facts":{"id":"0123456789abcdef","name":"web","running":true,"labels":{"whalewall.enabled":"true","whalewall.rules":"output:\n  - ips: [198.19.0.10]\n"},"networks":[{"name":"front","id":"net-1","ipv4":"198.18.128.2","ipv6":"2001:db8::2"},{"name":"back","id":"net-2","ipv4":"198.18.129.2","ipv6":null}],"ports":[{"container_port":80,"proto":"tcp","host_ip":"0.0.0.0","host_port":8080},{"container_port":53,"proto":"udp","host_ip":"127.0.0.1","host_port":5353}]},"errors":["e1"],"at":7}""";
        var read = (ContainerRecorded)Serializer.FromBinary(Encoding.UTF8.GetBytes(v1), "container-recorded.v1");
        Assert.True(Structural.Equal(RichV1(), read.Facts), Structural.Difference(RichV1(), read.Facts, "facts"));
        Assert.Equal(["e1"], read.Errors.ToArray());
        Assert.Equal(7, read.AtUnixMs);
        // written again, it is a v2 entry
        Assert.Equal(StateSerializer.Recorded, Serializer.Manifest(read));
    }

    [Fact]
    public void A_v1_snapshot_reads_back_through_the_upcaster_without_networks()
    {
        const string v1 = """{"docker_time_ns":99,"containers":[{"facts":{"id":"0123456789abcdef","name":"web","running":true,"labels":{"whalewall.enabled":"true","whalewall.rules":"output:\n  - ips: [198.19.0.10]\n"},"networks":[{"name":"front","id":"net-1","ipv4":"198.18.128.2","ipv6":"2001:db8::2"},{"name":"back","id":"net-2","ipv4":"198.18.129.2","ipv6":null}],"ports":[{"container_port":80,"proto":"tcp","host_ip":"0.0.0.0","host_port":8080},{"container_port":53,"proto":"udp","host_ip":"127.0.0.1","host_port":5353}]},"errors":["e1"],"at":7}]}""";
        var s = (ContainerStoreState)Serializer.FromBinary(Encoding.UTF8.GetBytes(v1), "containers-snapshot.v1");
        Assert.Equal(99, s.LastEventNanos);
        Assert.True(Structural.Equal(RichV1(), s.Containers[RichV1().Id].Facts));
        Assert.Empty(s.Networks);
    }

    [Fact]
    public void An_unknown_type_name_is_an_error_not_a_guess()
    {
        Assert.Throws<System.Runtime.Serialization.SerializationException>(() => Serializer.FromBinary("{}"u8.ToArray(), "container-recorded.v99"));
    }
}
