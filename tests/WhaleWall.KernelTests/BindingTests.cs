using System.Text.Json.Nodes;
using WhaleWall.Firewall.Kernel;
using WhaleWall.TestSupport;
using Xunit;
using static WhaleWall.KernelTests.RawNft;

namespace WhaleWall.KernelTests;

/// <summary>The libnftables binding against the real kernel, each test in its own KernelLab.</summary>
public sealed class BindingTests
{
    [Fact]
    public void Table_created_from_json_lists_back_as_json()
    {
        using var lab = new KernelLab();
        var created = lab.Nft.Run(Batch(
            AddTable("ww"),
            AddBaseChain("ww", "forward", "forward"),
            AddConcatSet("ww", "out4", ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"], "interval")));
        Assert.True(created.Ok, created.Error);

        var listed = lab.Nft.Run(Batch(ListTable("ww")));
        Assert.True(listed.Ok, listed.Error);
        var objects = Objects(listed.Output).ToList();
        var table = Assert.Single(objects, o => o.ContainsKey("table"))["table"]!;
        Assert.Equal("inet", (string?)table["family"]);
        Assert.Equal("ww", (string?)table["name"]);
        var chain = Assert.Single(objects, o => o.ContainsKey("chain"))["chain"]!;
        Assert.Equal("forward", (string?)chain["hook"]);
        Assert.Equal(-10, (int)chain["prio"]!);
        var set = Assert.Single(objects, o => o.ContainsKey("set"))["set"]!;
        Assert.Equal(["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"],
            set["type"]!.AsArray().Select(t => (string)t!));
    }

    [Fact]
    public void Failed_batch_changes_nothing()
    {
        using var lab = new KernelLab();
        Assert.True(lab.Nft.Run(Batch(AddTable("keep"))).Ok);

        // The third command fails (no such set): the whole transaction must be rolled back.
        var failed = lab.Nft.Run(Batch(
            AddTable("ww"),
            DeleteTable("keep"),
            AddElements("ww", "missing", Concat("198.18.10.2", "198.18.20.2", "tcp", 80))));

        Assert.False(failed.Ok);
        Assert.Contains("No such file or directory", failed.Error);
        Assert.False(lab.Nft.Run(Batch(ListTable("ww"))).Ok);
        Assert.True(lab.Nft.Run(Batch(ListTable("keep"))).Ok);
    }

    [Fact]
    public void Invalid_json_is_reported_not_thrown()
    {
        using var lab = new KernelLab();
        var bad = lab.Nft.Run("""{"nftables":[{"add":{"table":{"family":"inet"}}}]}""");
        Assert.False(bad.Ok);
        Assert.NotEmpty(bad.Error);
        // The context stays usable after an error, and the error does not leak into the next result.
        var good = lab.Nft.Run(Batch(AddTable("ww")));
        Assert.True(good.Ok, good.Error);
        Assert.Equal("", good.Error);
    }

    [Fact]
    public void Table_in_lab_namespace_is_invisible_in_own_namespace()
    {
        using var lab = new KernelLab();
        var table = "wwk_" + lab.Id;
        Assert.True(lab.Nft.Run(Batch(AddTable(table))).Ok);
        Assert.True(lab.Nft.Run(Batch(ListTable(table))).Ok);

        // Read-only look at the test process's own namespace: the table is not there.
        using var own = new LibNftables();
        var listed = own.Run(Batch(ListTable(table)));
        Assert.False(listed.Ok);
        Assert.Contains("No such file or directory", listed.Error);

        // And a second context on the lab namespace sees it.
        using var again = new LibNftables(lab.RouterNs);
        Assert.True(again.Run(Batch(ListTable(table))).Ok);
    }

    [Fact]
    public void Calls_from_many_threads_are_serialised()
    {
        using var lab = new KernelLab();
        Assert.True(lab.Nft.Run(Batch(AddTable("ww"),
            AddConcatSet("ww", "s", ["ipv4_addr", "inet_service"], "interval"))).Ok);
        Parallel.For(0, 64, new ParallelOptions { MaxDegreeOfParallelism = 16 }, i =>
        {
            var r = lab.Nft.Run(Batch(AddElements("ww", "s", Concat("198.18.30." + i, 1000 + i))));
            Assert.True(r.Ok, r.Error);
            Assert.True(lab.Nft.Run(Batch(ListSet("ww", "s"))).Ok);
        });
        var set = Objects(lab.Nft.Run(Batch(ListSet("ww", "s"))).Output).Single()["set"]!;
        Assert.Equal(64, set["elem"]!.AsArray().Count);
    }

    [Fact]
    public void A_context_without_a_path_works_in_its_constructors_namespace_for_callers_on_any_thread()
    {
        using var lab = new KernelLab();
        var table = "wwk_" + lab.Id;
        // made on a thread inside the lab's namespace; called from the test's thread-pool threads
        using var nft = Netns.Run(lab.RouterNs, () => new LibNftables());
        Assert.Null(nft.NetnsPath);
        Assert.True(nft.Run(Batch(AddTable(table), AddConcatSet(table, "s", ["ipv4_addr", "inet_service"], "interval"))).Ok);
        Parallel.For(0, 64, new ParallelOptions { MaxDegreeOfParallelism = 16 }, i =>
        {
            var r = nft.Run(Batch(AddElements(table, "s", Concat("198.18.30." + i, 1000 + i))));
            Assert.True(r.Ok, r.Error);
            Assert.True(nft.Check(Batch(AddElements(table, "s", Concat("198.18.31." + i, 1000 + i)))).Ok);
        });

        // every change landed in the lab's namespace, the dry runs nowhere, and none in the test's own
        var set = Objects(lab.Nft.Run(Batch(ListSet(table, "s"))).Output).Single()["set"]!;
        Assert.Equal(64, set["elem"]!.AsArray().Count);
        using var own = new LibNftables();
        Assert.False(own.Run(Batch(ListTable(table))).Ok);
    }

    [Fact]
    public void Run_after_dispose_throws()
    {
        var nft = new LibNftables();
        nft.Dispose();
        Assert.Throws<ObjectDisposedException>(() => nft.Run(Batch(ListTable("x"))));
    }

    [Fact]
    public void Missing_namespace_fails_at_construction()
    {
        var e = Assert.Throws<IOException>(() => new LibNftables("/run/netns/wwk-does-not-exist"));
        Assert.Contains("wwk-does-not-exist", e.Message);
    }
}
