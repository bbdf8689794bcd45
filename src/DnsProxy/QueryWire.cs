using System.Net;
using ARSoft.Tools.Net;
using ARSoft.Tools.Net.Dns;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Names;
using DnsQuestion = WhaleWall.Firewall.Dns.DnsQuestion;
using DnsRecord = WhaleWall.Firewall.Dns.DnsRecord;

namespace WhaleWall.DnsProxy;

/// <summary>Translation between the wire library's messages and WhaleWall's own types. The
/// query the proxy sends is encoded here (one question, RD, EDNS0 with a 1232-byte payload);
/// answers are decoded by ARSoft.Tools.Net.</summary>
internal static class QueryWire
{
    public const int EdnsPayload = 1232;

    public static byte[] EncodeQuery(ushort id, DnsName name, ushort type)
    {
        var buffer = new byte[12 + name.WireLength + 4 + 11];
        buffer[0] = (byte)(id >> 8);
        buffer[1] = (byte)id;
        buffer[2] = 0x01; // RD
        buffer[5] = 1;    // QDCOUNT
        buffer[11] = 1;   // ARCOUNT (OPT)
        var at = 12;
        foreach (var label in name.Labels)
        {
            buffer[at++] = (byte)label.Length;
            foreach (var c in label) buffer[at++] = (byte)c;
        }
        buffer[at++] = 0;
        buffer[at++] = (byte)(type >> 8);
        buffer[at++] = (byte)type;
        buffer[at++] = 0;
        buffer[at++] = (byte)DnsTypes.ClassIn;
        // OPT: root name, type 41, class = payload size, ttl 0, rdlen 0
        buffer[at++] = 0;
        buffer[at++] = 0;
        buffer[at++] = (byte)DnsTypes.OPT;
        buffer[at++] = EdnsPayload >> 8;
        buffer[at++] = EdnsPayload & 0xff;
        at += 6;
        return buffer;
    }

    /// <summary>A name as text WhaleWall's parser can judge. A label holding a dot (legal on the
    /// wire) must never read as two labels, so such a name becomes unparseable on purpose.</summary>
    public static string NameText(DomainName name) =>
        name.Labels.Any(l => l.Contains('.') || l.Length == 0) ? "\u0000" : string.Join('.', name.Labels);

    public static DnsQuestion Question(ARSoft.Tools.Net.Dns.DnsQuestion q) =>
        new(NameText(q.Name), (ushort)q.RecordType, (ushort)q.RecordClass);

    public static DnsRecord Record(DnsRecordBase r) => r switch
    {
        AddressRecordBase a => new(NameText(r.Name), (ushort)r.RecordType, (ushort)r.RecordClass, Ttl(r), a.Address),
        CNameRecord c => new(NameText(r.Name), (ushort)r.RecordType, (ushort)r.RecordClass, Ttl(r), Target: NameText(c.CanonicalName)),
        _ => new(NameText(r.Name), (ushort)r.RecordType, (ushort)r.RecordClass, Ttl(r)),
    };

    private static uint Ttl(DnsRecordBase r) => r.TimeToLive < 0 ? 0u : (uint)r.TimeToLive;

    /// <summary>Decodes an upstream datagram; null when it is not a DNS message at all.</summary>
    public static (DnsMessage Message, UpstreamAnswer Answer)? Decode(ArraySegment<byte> data, IPEndPoint from)
    {
        DnsMessage message;
        try { message = DnsMessage.Parse(data); }
        catch (Exception) { return null; }
        var answer = new UpstreamAnswer(
            message.TransactionID, !message.IsQuery, (DnsRcode)Math.Min((int)message.ReturnCode, 255),
            message.IsTruncated,
            message.Questions.Select(Question).ToArray(),
            message.AnswerRecords.Select(Record).ToArray(),
            from);
        return (message, answer);
    }

    /// <summary>The record to send back, its TTL capped (A, AAAA and CNAME are rebuilt; other
    /// allowed types pass as they came).</summary>
    public static DnsRecordBase Capped(DnsRecordBase r, uint maxTtl)
    {
        var ttl = (int)Math.Min(Ttl(r), maxTtl);
        return r switch
        {
            ARecord a => new ARecord(a.Name, ttl, a.Address),
            AaaaRecord a => new AaaaRecord(a.Name, ttl, a.Address),
            CNameRecord c => new CNameRecord(c.Name, ttl, c.CanonicalName),
            _ => r,
        };
    }
}
