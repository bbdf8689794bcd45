using System.Collections.Immutable;
using FsCheck;
using FsCheck.Fluent;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Nft;
using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.Tests.Compile;

/// <summary>The kernel rejects overlapping interval elements, so the compiler must produce
/// disjoint boxes that cover exactly what the rules allow.</summary>
public class BoxSetProperties(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly Gen<ImmutableArray<Field>> Box =
        from a in Gen.Choose(0, 20) from b in Gen.Choose(0, 20)
        from c in Gen.Choose(0, 20) from d in Gen.Choose(0, 20)
        from e in Gen.Choose(0, 5) from f in Gen.Choose(0, 5)
        select ImmutableArray.Create(
            new Field(FieldKind.Port, (UInt128)Math.Min(a, b), (UInt128)Math.Max(a, b)),
            new Field(FieldKind.Port, (UInt128)Math.Min(c, d), (UInt128)Math.Max(c, d)),
            new Field(FieldKind.Proto, (UInt128)Math.Min(e, f), (UInt128)Math.Max(e, f)));

    [Fact]
    public void Disjoint_boxes_cover_exactly_the_input_and_never_overlap()
    {
        Prop.ForAll(Box.ListOf().Select(l => l.ToList()).ToArbitrary(), boxes =>
        {
            var result = BoxSet.Disjoint(boxes).Pieces.Select(p => p.Box).ToList();
            for (var i = 0; i < result.Count; i++)
            for (var j = i + 1; j < result.Count; j++)
                if (BoxSet.Intersects(result[i], result[j])) return false;
            for (var x = 0; x <= 20; x++)
            for (var y = 0; y <= 20; y++)
            for (var z = 0; z <= 5; z++)
            {
                UInt128[] point = [(UInt128)x, (UInt128)y, (UInt128)z];
                var inInput = boxes.Any(b => BoxSet.Contains(b, point));
                var inResult = result.Count(b => BoxSet.Contains(b, point));
                if (inResult != (inInput ? 1 : 0)) return false;
            }
            return true;
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Where_boxes_overlap_the_earlier_ones_tag_wins()
    {
        var tagged = Box.ListOf().Select(l => l.Select((box, i) => (box, i % 3)).ToList());
        Prop.ForAll(tagged.ToArbitrary(), boxes =>
        {
            var result = BoxSet.Disjoint(boxes).Pieces;
            for (var x = 0; x <= 20; x++)
            for (var y = 0; y <= 20; y++)
            for (var z = 0; z <= 5; z++)
            {
                UInt128[] point = [(UInt128)x, (UInt128)y, (UInt128)z];
                var first = boxes.FirstOrDefault(b => BoxSet.Contains(b.box, point));
                var pieces = result.Where(p => BoxSet.Contains(p.Box, point)).ToList();
                if (first.box.IsDefault ? pieces.Count != 0 : pieces.Count != 1 || pieces[0].Tag != first.Item2) return false;
            }
            return true;
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Past_its_budget_splitting_stops_with_a_reason_and_no_pieces()
    {
        Prop.ForAll(Box.ListOf().Select(l => l.ToList()).ToArbitrary(), Gen.Choose(0, 30).ToArbitrary(), (boxes, bound) =>
        {
            var budget = new BoxSet.Budget(MaxPieces: bound, MaxPairs: bound, MaxCuts: bound);
            var bounded = BoxSet.Disjoint(boxes, budget);
            var free = BoxSet.Disjoint(boxes);
            return bounded.Error is null
                ? bounded.Pieces.Select(p => string.Join("|", p.Box)).SequenceEqual(free.Pieces.Select(p => string.Join("|", p.Box)))
                : bounded.Pieces.IsEmpty && bounded.Error.Length > 0;
        }).QuickCheckThrowOnFailure();
    }

    /// <summary>The compiler's budget holds on random heavily overlapping inputs at the element
    /// limit: 4,096 boxes of 5 fields, some fields spanning everything (so overlaps there are
    /// certain), the others random intervals of a given width out of 65,536.</summary>
    [Theory]
    [InlineData(0, 4096)]
    [InlineData(3, 256)]
    [InlineData(3, 900)]
    [InlineData(3, 4096)]
    [InlineData(4, 900)]
    [InlineData(4, 2)]
    [InlineData(2, 2000)]
    public void Within_the_compilers_budget_any_4096_boxes_split_in_bounded_time(int fullFields, int width)
    {
        var random = new Random(fullFields * 100_000 + width);
        var boxes = Enumerable.Range(0, Compiler.MaxElements).Select(_ => ImmutableArray.CreateRange(
            Enumerable.Range(0, 5).Select(d =>
            {
                if (d < fullFields) return new Field(FieldKind.Port, 0, ushort.MaxValue);
                var lo = (UInt128)random.Next(0, 1 << 16);
                return new Field(FieldKind.Port, lo, lo + (UInt128)random.Next(0, width));
            }))).ToList();
        var cost = WorkMeter.Hot(() => BoxSet.Disjoint(boxes, Compiler.SplitBudget));
        var result = BoxSet.Disjoint(boxes, Compiler.SplitBudget);
        output.WriteLine($"{fullFields} full fields, width {width}: {cost}, {result.Error ?? result.Pieces.Length + " pieces"}");
        Assert.True(cost.Cpu < WorkMeter.HotCpuBound, $"{cost}");
        Assert.True(cost.Allocated < 64L << 20, $"{cost}");
    }
}
