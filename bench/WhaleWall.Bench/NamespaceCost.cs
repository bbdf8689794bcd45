using WhaleWall.Firewall.Kernel;
using WhaleWall.Firewall.Nft;
using WhaleWall.TestSupport;

namespace WhaleWall.Bench;

/// <summary>Once: what a freshly created network namespace charges per set-element
/// transaction, compared with the host namespace (same table, same elements).</summary>
public static class NamespaceCost
{
    public static void Run(Ctx ctx)
    {
        var present = ctx.Short ? 100 : 1000;
        var samples = ctx.Short ? 10 : 50;
        var table = Synthetic.Fragments(present).SelectMany(f => f.Elements).ToList();
        var extra = Enumerable.Range(present, samples).Select(i => Synthetic.Compile(Synthetic.Facts(i, "one"))).ToList();

        var host = Measure(ctx.Nft, ctx.Table, table, extra);
        ctx.DropTable();

        var ns = ctx.NsPrefix + "-fresh";
        Shell.Run("ip", "netns", "add", ns);
        Cleanup.Register("namespace " + ns, () => Shell.Try("ip", "netns", "del", ns));
        Shell.Run("ip", "-n", ns, "route", "add", "blackhole", TestNet.Supernet4, "metric", TestNet.BlackholeMetric.ToString());
        (List<double> Add, List<double> Del) fresh;
        using (var lib = new LibNftables(Netns.Named(ns)))
            fresh = Measure(new TimedNftables(lib), ctx.Table, table, extra);
        Shell.Run("ip", "netns", "del", ns);

        var h = Stats.Median(host.Add);
        var f = Stats.Median(fresh.Add);
        ctx.Log($"namespace cost: host add {Stats.P50P99(host.Add)}, fresh add {Stats.P50P99(fresh.Add)}");
        ctx.Report.Add($"One container's elements added, {present:N0} present: host netns vs fresh netns",
            $"host p50 {Stats.Ms(h)} (delete {Stats.Ms(Stats.Median(host.Del))}); fresh netns p50 {Stats.Ms(f)} (delete {Stats.Ms(Stats.Median(fresh.Del))}): {(f >= h ? "+" : "-")}{Stats.Ms(Math.Abs(f - h))} per transaction ({f / h:0.00}x)",
            "");
    }

    private static (List<double> Add, List<double> Del) Measure(TimedNftables nft, string table, List<Element> present, List<Fragment> extra)
    {
        nft.Must(NftJson.FullTable(table, present));
        var adds = new List<double>();
        var dels = new List<double>();
        foreach (var f in extra)
        {
            var add = NftJson.Changes(table, [], f.Elements);
            var del = NftJson.Changes(table, f.Elements, []);
            var n = nft.Count;
            nft.Must(add);
            nft.Must(del);
            var d = nft.Since(n);
            adds.Add(d[0]);
            dels.Add(d[1]);
        }
        nft.Must(NftJson.DeleteTable(table));
        return (adds, dels);
    }
}
