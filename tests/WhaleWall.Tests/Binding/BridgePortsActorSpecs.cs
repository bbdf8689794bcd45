using Akka.Actor;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Binding;
using WhaleWall.Firewall.Binding;
using Xunit;
using static WhaleWall.Actors.Binding.BridgePortsCommands;
using static WhaleWall.Actors.Binding.BridgePortsEvents;

namespace WhaleWall.Tests.Binding;

public class BridgePortsActorSpecs : TestKit
{
    /// <summary>Ports that appear only when the test says so; counts the lookups waiting at once.</summary>
    private sealed class GatedPorts : IBridgePorts
    {
        public readonly ManualResetEventSlim Gate = new();
        private int waiting;
        public int MostWaiting;

        public BridgePort? Find(string sandboxKey, string bridge) => null;
        public BridgePort? FindByPid(int pid, string bridge) => null;
        public IReadOnlyList<BridgePort> FindByMac(string bridge, string mac, IReadOnlySet<int>? skip = null) => [];
        public bool Exists(int index, string name) => true;

        public BridgePort? WaitForMac(string bridge, string mac, TimeSpan timeout, IReadOnlySet<int>? skip = null)
        {
            var now = Interlocked.Increment(ref waiting);
            lock (Gate) MostWaiting = Math.Max(MostWaiting, now);
            try
            {
                Gate.Wait(TimeSpan.FromSeconds(20));
                return new BridgePort(1000 + int.Parse(mac[^2..], System.Globalization.NumberStyles.HexNumber), "veth" + mac[^2..], 2, mac);
            }
            finally { Interlocked.Decrement(ref waiting); }
        }
    }

    /// <summary>Each lookup holds a thread and a netlink socket while it waits (up to 15 s): a burst
    /// of containers whose ports do not appear took 907 threads. At most MaxLookups wait; the others
    /// wait their turn, and every one is answered.</summary>
    [Fact]
    public void A_burst_of_lookups_holds_at_most_the_bounded_number_of_threads_and_every_one_is_answered()
    {
        var ports = new GatedPorts();
        var actor = Sys.ActorOf(BridgePortsActor.Props(() => ports, "boot"));
        var burst = BridgePortsActor.MaxLookups * 3;
        for (var i = 0; i < burst; i++)
            actor.Tell(new FindPort($"c{i:D3}", "net", "br0", $"02:42:c6:12:00:{i:x2}"));

        AwaitCondition(() => ports.MostWaiting == BridgePortsActor.MaxLookups, TimeSpan.FromSeconds(10));
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(BridgePortsActor.MaxLookups, ports.MostWaiting);

        ports.Gate.Set();
        var found = Enumerable.Range(0, burst).Select(_ => ExpectMsg<PortFound>(TimeSpan.FromSeconds(10))).ToList();
        Assert.Equal(burst, found.Select(f => f.Mac).Distinct().Count());
        Assert.Equal(BridgePortsActor.MaxLookups, ports.MostWaiting);
    }
}
