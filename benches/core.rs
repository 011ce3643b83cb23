//! Criterion benchmarks of the core's hot pure functions: signing, listing parsing, CRC-64 and
//! combining CRC-64s.
//!
//! `cargo bench --bench core`. End-to-end throughput is measured by the Python harness
//! (BENCHMARKS.md), against real servers and the peers.

use chrono::{TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use http::Method;

use _core::internals::{
    crc64, crc64_combine, Credential, ListBucketResult, OssV4Signer, RequestHead, Signer,
};

fn signing(c: &mut Criterion) {
    let signer = OssV4Signer::new("cn-hangzhou");
    let url = reqwest::Url::parse("http://ai-testset.oss-cn-hangzhou.aliyuncs.com/").unwrap();
    let cred = Credential {
        access_key_id: "LTAI5tExampleKeyId".into(),
        access_key_secret: "ExampleSecretExampleSecret0123".into(),
        security_token: Some("token".repeat(100)),
        expiration: None,
    };
    let now = Utc.timestamp_opt(1702743657, 0).unwrap();
    let head = RequestHead::new(
        Method::GET,
        "ai-testset",
        "EnglistImg/Img/BadImag/Bmp/Sample001/img001-00001.png",
    );
    c.bench_function("sign GetObject (OSS V4, STS token)", |b| {
        b.iter(|| {
            let mut h = head.clone();
            signer.sign(&mut h, &url, &cred, now).unwrap();
            black_box(h)
        })
    });
    let mut list = RequestHead::new(Method::GET, "ai-testset", "");
    list.query = vec![
        ("list-type".into(), "2".into()),
        ("prefix".into(), "EnglistImg/Img/".into()),
        ("max-keys".into(), "1000".into()),
        ("encoding-type".into(), "url".into()),
        (
            "continuation-token".into(),
            "ChxFbmdsaXN0SW1nL0ltZy9pbWctMDAwOTk5LnBuZxAA".into(),
        ),
    ];
    c.bench_function("sign ListObjectsV2 (OSS V4)", |b| {
        b.iter(|| {
            let mut h = list.clone();
            signer.sign(&mut h, &url, &cred, now).unwrap();
            black_box(h)
        })
    });
}

fn listing(c: &mut Criterion) {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>ai-testset</Name>\
         <Prefix>EnglistImg%2F</Prefix><MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>\
         <IsTruncated>true</IsTruncated><NextContinuationToken>abc</NextContinuationToken>",
    );
    for i in 0..1000 {
        xml.push_str(&format!(
            "<Contents><Key>EnglistImg%2FImg%2Fimg-{i:06}%20copy.png</Key>\
             <LastModified>2024-01-01T00:00:00.000Z</LastModified>\
             <ETag>\"5B3C1A2E053D763E1B002CC607C5A0FE\"</ETag><Type>Normal</Type>\
             <Size>{}</Size><StorageClass>Standard</StorageClass></Contents>",
            100_000 + i
        ));
    }
    xml.push_str("</ListBucketResult>");
    let mut group = c.benchmark_group("ListObjectsV2");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("parse a 1000-key page", |b| {
        b.iter(|| black_box(ListBucketResult::parse(xml.as_bytes()).unwrap()))
    });
    group.finish();
}

fn checksum(c: &mut Criterion) {
    let data = vec![0x5au8; 8 << 20];
    let mut group = c.benchmark_group("CRC-64/XZ");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("8 MiB part", |b| b.iter(|| black_box(crc64(&data))));
    group.finish();

    // Once per part of a large object, to check the whole against what the server states.
    let (crc_a, crc_b, len_b) = (black_box(0x0123_4567_89AB_CDEF), black_box(7), 8 << 20);
    let mut group = c.benchmark_group("CRC-64/XZ combine");
    group.bench_function("ours, after an 8 MiB part", |b| {
        b.iter(|| black_box(crc64_combine(crc_a, crc_b, black_box(len_b))))
    });
    group.bench_function("crc-fast, after an 8 MiB part", |b| {
        b.iter(|| {
            let algorithm = crc_fast::CrcAlgorithm::Crc64Xz;
            black_box(crc_fast::checksum_combine(
                algorithm,
                crc_a,
                crc_b,
                black_box(len_b),
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, signing, listing, checksum);
criterion_main!(benches);
