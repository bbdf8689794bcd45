using System.Collections.Immutable;
using FsCheck;
using FsCheck.Fluent;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Nft;
using Xunit;

namespace WhaleWall.Tests.Compile;

/// <summary>The kernel rejects overlapping interval elements, so the compiler must produce
/// disjoint boxes that cover exactly what the rules allow.</summary>
public class BoxSetProperties
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
}
