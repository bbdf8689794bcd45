using System.Collections.Immutable;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Nft;
using Xunit;
using static WhaleWall.Actors.Nft.NftWriterCommands;
using static WhaleWall.Actors.Nft.NftWriterEvents;

namespace WhaleWall.Tests.Actors;

public class NftWriterActorSpecs() : TestKit($"{NftWriterActor.DispatcherId} {{ type = PinnedDispatcher }}")
{
    private readonly FakeNftables nft = new();

    private static Element Managed(int last) =>
        new("managed4", [new Field(FieldKind.Ipv4, (UInt128)(0xC6128000u + (uint)last), (UInt128)(0xC6128000u + (uint)last))]);

    private IActorRef StartedWriter()
    {
        var writer = Sys.ActorOf(NftWriterActor.Props(nft, "t"));
        writer.Tell(new ExpectOwners(ImmutableHashSet<string>.Empty));
        AwaitCondition(() => nft.Transactions.Count == 1);
        return writer;
    }

    [Fact]
    public void Start_up_builds_the_whole_table_in_one_transaction_once_every_container_reported()
    {
        var writer = Sys.ActorOf(NftWriterActor.Props(nft, "t"));
        writer.Tell(new ExpectOwners(["a", "b"]));
        writer.Tell(new Program(new Fragment("a", [Managed(2)]), 1));
        ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Assert.Empty(nft.Transactions);

        writer.Tell(new Program(new Fragment("b", [Managed(3)]), 1));
        ExpectMsgAllOf([new Applied("a", 1), new Applied("b", 1)]);
        var transaction = Assert.Single(nft.Transactions);
        Assert.Contains("\"flush\":{\"chain\"", transaction);
        Assert.Contains("198.18.128.2", transaction);
        Assert.Contains("198.18.128.3", transaction);
    }

    [Fact]
    public void Requests_arriving_together_share_one_transaction()
    {
        var writer = StartedWriter();
        for (var i = 2; i < 12; i++) writer.Tell(new Program(new Fragment($"c{i}", [Managed(i)]), 1));
        for (var i = 2; i < 12; i++) ExpectMsg<Applied>();
        Assert.True(nft.Transactions.Count <= 3, $"{nft.Transactions.Count - 1} transactions for 10 requests");
    }

    [Fact]
    public void A_rejected_batch_is_retried_per_container_and_only_the_bad_one_is_rejected()
    {
        var writer = StartedWriter();
        nft.Poison = "198.18.128.66";
        writer.Tell(new Program(new Fragment("good", [Managed(5)]), 1));
        writer.Tell(new Program(new Fragment("bad", [Managed(66)]), 1));
        var replies = new[] { ExpectMsg<object>(), ExpectMsg<object>() };
        Assert.Contains(new Applied("good", 1), replies);
        Assert.Contains(replies, r => r is Rejected { Owner: "bad" });
        Assert.Contains(nft.Transactions, t => t.Contains("198.18.128.5") && !t.Contains("198.18.128.66"));
    }

    [Fact]
    public void Removing_a_container_deletes_its_elements()
    {
        var writer = StartedWriter();
        writer.Tell(new Program(new Fragment("a", [Managed(9)]), 1));
        ExpectMsg<Applied>();
        writer.Tell(new Program(Fragment.Empty("a"), 2));
        ExpectMsg(new Applied("a", 2));
        Assert.Contains("{\"delete\":{\"element\"", nft.Transactions.Last());
        Assert.Contains("198.18.128.9", nft.Transactions.Last());
    }

    [Fact]
    public void An_address_reused_by_a_new_container_survives_the_old_ones_removal()
    {
        var writer = StartedWriter();
        writer.Tell(new Program(new Fragment("old", [Managed(4)]), 1));
        ExpectMsg<Applied>();
        writer.Tell(new Program(new Fragment("new", [Managed(4)]), 1));
        ExpectMsg<Applied>();
        var before = nft.Transactions.Count;
        writer.Tell(new Program(Fragment.Empty("old"), 2));
        ExpectMsg(new Applied("old", 2));
        Assert.Equal(before, nft.Transactions.Count); // nothing to delete: "new" still holds it
    }

    [Fact]
    public void A_new_container_is_committed_before_other_containers_removals()
    {
        var writer = StartedWriter();
        writer.Tell(new Program(new Fragment("old", [Managed(20)]), 1));
        ExpectMsg<Applied>();
        var before = nft.Transactions.Count;
        writer.Tell(new Program(Fragment.Empty("old"), 2));
        writer.Tell(new Program(new Fragment("new", [Managed(21)]), 1));
        ExpectMsgAllOf([new Applied("old", 2), new Applied("new", 1)]);
        var transactions = nft.Transactions.Skip(before).ToList();
        Assert.Equal(2, transactions.Count);
        Assert.Contains("198.18.128.21", transactions[0]);
        Assert.DoesNotContain("delete", transactions[0]);
        Assert.Contains("198.18.128.20", transactions[1]);
    }
}
