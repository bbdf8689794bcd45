using System.Collections.Immutable;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Health;
using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Nft;
using Xunit;
using static WhaleWall.Actors.Nft.NftWriterCommands;

namespace WhaleWall.Tests.Actors;

/// <summary>The watchdog judges the writer from outside: every blocking kernel call on the
/// writer's thread counts, not only its transactions.</summary>
public class WriterWatchdogSpecs() : TestKit($"{NftWriterActor.DispatcherId} {{ type = PinnedDispatcher }}")
{
    /// <summary>A kernel that blocks in one kind of call until released: the start-up table's
    /// listing of the chains an earlier run left, or a dry run (the first commit is refused until
    /// then, so dry runs look for the owner to blame).</summary>
    private sealed class Blocks(string call) : INftables
    {
        public readonly ManualResetEventSlim Release = new();
        public volatile bool Blocked;

        public NftResult Run(string json)
        {
            if (json.Contains("{\"list\":"))
            {
                if (call == "list") Wait();
                return NftResult.Failure("Error: No such file or directory");
            }
            return call == "check" && !Release.IsSet ? NftResult.Failure("Error: refused") : NftResult.Success();
        }

        public NftResult Check(string json)
        {
            if (call == "check") Wait();
            return NftResult.Success();
        }

        private void Wait()
        {
            Blocked = true;
            Release.Wait(TimeSpan.FromSeconds(60));
        }
    }

    [Theory]
    [InlineData("list")]
    [InlineData("check")]
    public void A_writer_blocked_in_any_kernel_call_is_reported_stuck_until_the_call_returns(string call)
    {
        // review: only Transaction() was watched; a hung listing or dry run left /healthz healthy
        var nft = new Blocks(call);
        var health = CreateTestProbe();
        Sys.EventStream.Subscribe(health, typeof(HealthNotices.ComponentHealth));
        var progress = new WriterProgress();
        var writer = Sys.ActorOf(NftWriterActor.Props(nft, "t", progress: progress));
        Sys.ActorOf(WriterWatchdogActor.Props(progress));
        Assert.Null(health.ExpectMsg<HealthNotices.ComponentHealth>().Problem);

        writer.Tell(new Program(new Fragment("a", [new("managed4", [new Field(FieldKind.Ipv4, 0xC6128002u, 0xC6128002u)])]), 1));
        writer.Tell(new ExpectOwners(ImmutableHashSet.Create("a")));
        AwaitCondition(() => nft.Blocked, TimeSpan.FromSeconds(5));
        var stuck = health.ExpectMsg<HealthNotices.ComponentHealth>(WriterProgress.StuckAfter + TimeSpan.FromSeconds(5));
        Assert.Equal(HealthNotices.Components.Writer, stuck.Component);
        Assert.Contains("has been running for", stuck.Problem);

        nft.Release.Set();
        ExpectMsg(new NftWriterEvents.Applied("a", 1), TimeSpan.FromSeconds(5));
        Assert.Null(health.ExpectMsg<HealthNotices.ComponentHealth>(TimeSpan.FromSeconds(5)).Problem);
    }
}
