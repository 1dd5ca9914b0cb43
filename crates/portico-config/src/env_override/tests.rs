use crate::env_override::is_valid_key_part;

#[test]
fn key_parts_follow_backstage_pattern() {
    let cases = [
        ("app", true),
        ("baseUrl", true),
        ("BASEURL", true),
        ("v2", true),
        ("my-plugin", true),
        ("a-b-c", true),
        ("", false),
        ("2fa", false),
        ("a--b", false),
        ("-a", false),
        ("a-", false),
        ("a-1", false),
        ("a.b", false),
        ("a b", false),
        ("é", false),
    ];
    for (part, expected) in cases {
        assert_eq!(is_valid_key_part(part), expected, "key part {part:?}");
    }
}
