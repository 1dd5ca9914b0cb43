use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use serde_json::{json, Value as Json};

use crate::fetch::{copy_tree, template_file, template_tree, FetchError, TemplateOptions};
use crate::render::{Integration, IntegrationKind};

/// What a directory holds: files as `path -> contents`, directories as `path/ -> ""`, symlinks
/// as `path -> "-> target"`.
type Tree = BTreeMap<String, String>;

fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, contents) in files {
        let full = root.join(path);
        if let Some(directory) = path.strip_suffix('/') {
            fs::create_dir_all(root.join(directory)).unwrap();
            continue;
        }
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, contents).unwrap();
    }
}

fn read_tree(root: &Path) -> Tree {
    let mut tree = Tree::new();
    collect(root, root, &mut tree);
    tree
}

fn collect(root: &Path, directory: &Path, tree: &mut Tree) {
    for entry in fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        let relative = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
        let metadata = fs::symlink_metadata(&path).unwrap();
        if metadata.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap();
            tree.insert(relative, format!("-> {}", target.display()));
        } else if metadata.is_dir() {
            tree.insert(format!("{relative}/"), String::new());
            collect(root, &path, tree);
        } else {
            tree.insert(relative, String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned());
        }
    }
}

fn tree(entries: &[(&str, &str)]) -> Tree {
    entries.iter().map(|(path, contents)| ((*path).to_owned(), (*contents).to_owned())).collect()
}

fn options(input: Json) -> TemplateOptions {
    TemplateOptions::from_input(&input).unwrap()
}

/// Templates `skeleton` with `input` into a fresh target and returns (written list, target tree).
fn run(skeleton: &[(&str, &str)], input: Json) -> (Vec<String>, Tree) {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    write_tree(source.path(), skeleton);
    let written = template_tree(source.path(), target.path(), &options(input), &[]).unwrap();
    (written, read_tree(target.path()))
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn options_are_read_and_normalised() {
    let parsed = options(json!({
        "values": {"name": "svc"},
        "copyWithoutTemplating": ["*.png"],
        "replace": true,
        "trimBlocks": true,
        "lstripBlocks": false
    }));
    assert_eq!(parsed.values, json!({"name": "svc"}));
    assert_eq!(parsed.copy_without_templating, vec!["*.png".to_owned()]);
    assert!(parsed.copy_without_render.is_empty());
    assert!(parsed.replace && parsed.trim_blocks && !parsed.lstrip_blocks && !parsed.cookiecutter_compat);
    assert_eq!(parsed.template_file_extension, None);

    assert_eq!(options(json!({})).values, json!({}));
    assert_eq!(options(json!({"values": null})).values, json!({}));
    let extension = |value: Json| options(json!({"templateFileExtension": value})).template_file_extension;
    assert_eq!(extension(json!(true)), Some(".njk".to_owned()));
    assert_eq!(extension(json!("tpl")), Some(".tpl".to_owned()));
    assert_eq!(extension(json!(".j2")), Some(".j2".to_owned()));
    assert_eq!(extension(json!(false)), None);
    assert_eq!(extension(json!("")), None);
}

#[test]
fn inconsistent_options_are_rejected_with_a_message() {
    let cases = [
        (json!({"copyWithoutRender": [], "copyWithoutTemplating": []}), "at the same time"),
        (json!({"copyWithoutTemplating": "*.png"}), "copyWithoutTemplating must be an array"),
        (json!({"copyWithoutRender": [1]}), "copyWithoutRender must be an array of glob pattern strings"),
        (
            json!({"templateFileExtension": true, "copyWithoutTemplating": ["x"]}),
            "templateFileExtension cannot be combined",
        ),
        (
            json!({"templateFileExtension": "njk", "cookiecutterCompat": true}),
            "templateFileExtension cannot be combined",
        ),
        (json!({"templateFileExtension": 3}), "templateFileExtension must be a string or a boolean"),
        (json!({"replace": "yes"}), "replace must be a boolean"),
    ];
    for (input, expected) in cases {
        match TemplateOptions::from_input(&input) {
            Err(err @ FetchError::InvalidInput { .. }) => {
                assert!(err.to_string().contains(expected), "{input}: {err}");
            }
            other => panic!("{input} gave {other:?}"),
        }
    }
}

#[test]
fn renders_contents_and_paths_including_dot_files() {
    let (written, output) = run(
        &[
            ("README.md", "# ${{ values.name }}\n"),
            ("${{ values.name }}/main.txt", "owner=${{ values.owner }}"),
            (".github/workflows/ci.yaml", "on: ${{ '${{' }} github.event }}"),
            (".env", "NAME=${{ values.name }}"),
            ("empty/", ""),
        ],
        json!({"values": {"name": "svc", "owner": "team"}}),
    );
    assert_eq!(
        output,
        tree(&[
            (".env", "NAME=svc"),
            (".github/", ""),
            (".github/workflows/", ""),
            (".github/workflows/ci.yaml", "on: ${{ github.event }}"),
            ("README.md", "# svc\n"),
            ("empty/", ""),
            ("svc/", ""),
            ("svc/main.txt", "owner=team"),
        ])
    );
    assert_eq!(written, vec![".env", ".github/workflows/ci.yaml", "README.md", "svc/main.txt"]);
}

#[test]
fn conditional_path_segments_drop_files_and_directories() {
    let skeleton = [
        ("{% if values.docs %}docs{% endif %}/index.md", "docs"),
        ("{% if values.docs %}docs{% endif %}/nested/deep.md", "deep"),
        ("{% if values.ci %}ci.yaml{% endif %}", "ci"),
        ("src/{% if values.extra %}extra{% endif %}/x.txt", "x"),
        ("keep.txt", "keep"),
    ];
    let (_, without) = run(&skeleton, json!({"values": {"docs": false, "ci": false, "extra": false}}));
    assert_eq!(without, tree(&[("keep.txt", "keep"), ("src/", "")]));

    let (_, with) = run(&skeleton, json!({"values": {"docs": true, "ci": true, "extra": true}}));
    assert_eq!(
        with,
        tree(&[
            ("ci.yaml", "ci"),
            ("docs/", ""),
            ("docs/index.md", "docs"),
            ("docs/nested/", ""),
            ("docs/nested/deep.md", "deep"),
            ("keep.txt", "keep"),
            ("src/", ""),
            ("src/extra/", ""),
            ("src/extra/x.txt", "x"),
        ])
    );
}

#[test]
fn extension_mode_renders_only_template_files_but_all_paths() {
    let (written, output) = run(
        &[
            ("app.yaml.njk", "name: ${{ values.name }}"),
            ("static.txt", "kept ${{ values.name }}"),
            ("${{ values.name }}.md", "raw ${{ values.name }}"),
            ("dir.njk/inner.njk", "${{ values.name }}!"),
        ],
        json!({"values": {"name": "svc"}, "templateFileExtension": true}),
    );
    assert_eq!(
        output,
        tree(&[
            ("app.yaml", "name: svc"),
            ("dir.njk/", ""),
            ("dir.njk/inner", "svc!"),
            ("static.txt", "kept ${{ values.name }}"),
            ("svc.md", "raw ${{ values.name }}"),
        ])
    );
    assert_eq!(written, vec!["app.yaml", "dir.njk/inner", "static.txt", "svc.md"]);
}

#[test]
fn copy_without_templating_keeps_contents_but_renders_paths() {
    let skeleton = [
        ("assets/${{ values.name }}.txt", "${{ values.name }}"),
        ("assets/sub/raw.txt", "${{ values.name }}"),
        ("logo.png", "${{ values.name }}"),
        ("img/icon.png", "${{ values.name }}"),
        ("main.txt", "${{ values.name }}"),
    ];
    let (_, output) = run(
        &skeleton,
        json!({"values": {"name": "svc"}, "copyWithoutTemplating": ["assets/**", "**/*.png"]}),
    );
    assert_eq!(
        output,
        tree(&[
            ("assets/", ""),
            ("assets/sub/", ""),
            ("assets/sub/raw.txt", "${{ values.name }}"),
            ("assets/svc.txt", "${{ values.name }}"),
            ("img/", ""),
            ("img/icon.png", "${{ values.name }}"),
            ("logo.png", "${{ values.name }}"),
            ("main.txt", "svc"),
        ])
    );
}

#[test]
fn copy_without_render_keeps_matched_paths_raw() {
    let (_, output) = run(
        &[
            ("assets/${{ values.name }}.txt", "${{ values.name }}"),
            ("${{ values.name }}.txt", "${{ values.name }}"),
        ],
        json!({"values": {"name": "svc"}, "copyWithoutRender": ["assets/*"]}),
    );
    assert_eq!(
        output,
        tree(
            &[("assets/", ""), ("assets/${{ values.name }}.txt", "${{ values.name }}"), ("svc.txt", "svc"),]
        )
    );
}

#[test]
fn glob_patterns_follow_minimatch_conventions() {
    let (_, output) = run(
        &[
            ("top.md", "${{ values.x }}"),
            ("a/nested.md", "${{ values.x }}"),
            (".hidden.md", "${{ values.x }}"),
            ("a/keep.md", "${{ values.x }}"),
        ],
        json!({"values": {"x": "R"}, "copyWithoutTemplating": ["*.md", "./a/*.md", "!a/keep.md"]}),
    );
    assert_eq!(
        output,
        tree(&[
            (".hidden.md", "${{ values.x }}"),
            ("a/", ""),
            ("a/keep.md", "R"),
            ("a/nested.md", "${{ values.x }}"),
            ("top.md", "${{ values.x }}"),
        ])
    );
}

#[test]
fn invalid_glob_is_reported() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let options = options(json!({"copyWithoutTemplating": ["a/[b"]}));
    let err = template_tree(source.path(), target.path(), &options, &[]).unwrap_err();
    assert!(matches!(err, FetchError::InvalidGlob { .. }), "{err:?}");
    assert!(err.to_string().contains("a/[b"), "{err}");
}

#[test]
fn cookiecutter_mode_uses_its_own_context_and_delimiters() {
    let (_, output) = run(
        &[("{{ cookiecutter.name }}/app.json", "{{ cookiecutter.tags | jsonify }} ${{ cookiecutter.name }}")],
        json!({"values": {"name": "svc", "tags": ["a"]}, "cookiecutterCompat": true}),
    );
    assert_eq!(output, tree(&[("svc/", ""), ("svc/app.json", "[\"a\"] $svc")]));
}

#[test]
fn binary_files_are_copied_verbatim() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let with_nul = b"PNG\0${{ values.name }}".to_vec();
    let not_utf8 = vec![0xff, 0xfe, b'$', b'{', b'{', b' ', b'x', b' ', b'}', b'}'];
    fs::write(source.path().join("image.png"), &with_nul).unwrap();
    fs::write(source.path().join("latin1.txt"), &not_utf8).unwrap();
    template_tree(source.path(), target.path(), &options(json!({"values": {"name": "svc"}})), &[]).unwrap();
    assert_eq!(fs::read(target.path().join("image.png")).unwrap(), with_nul);
    assert_eq!(fs::read(target.path().join("latin1.txt")).unwrap(), not_utf8);
}

#[test]
fn file_modes_are_preserved() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("run.sh", "#!/bin/sh\necho ${{ values.name }}\n"), ("data.bin", "\0")]);
    fs::set_permissions(source.path().join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(source.path().join("data.bin"), fs::Permissions::from_mode(0o600)).unwrap();
    template_tree(source.path(), target.path(), &options(json!({"values": {"name": "svc"}})), &[]).unwrap();
    assert_eq!(mode_of(&target.path().join("run.sh")), 0o755);
    assert_eq!(mode_of(&target.path().join("data.bin")), 0o600);
    assert_eq!(fs::read_to_string(target.path().join("run.sh")).unwrap(), "#!/bin/sh\necho svc\n");
}

#[test]
fn existing_files_are_kept_unless_replace() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("a.txt", "new ${{ values.v }}"), ("b.txt", "b")]);
    write_tree(target.path(), &[("a.txt", "old")]);
    let keep = options(json!({"values": {"v": 1}}));
    let written = template_tree(source.path(), target.path(), &keep, &[]).unwrap();
    assert_eq!(written, vec!["b.txt"]);
    assert_eq!(fs::read_to_string(target.path().join("a.txt")).unwrap(), "old");

    // A read-only existing file is replaced too.
    fs::set_permissions(target.path().join("a.txt"), fs::Permissions::from_mode(0o444)).unwrap();
    let replace = options(json!({"values": {"v": 2}, "replace": true}));
    let written = template_tree(source.path(), target.path(), &replace, &[]).unwrap();
    assert_eq!(written, vec!["a.txt", "b.txt"]);
    assert_eq!(fs::read_to_string(target.path().join("a.txt")).unwrap(), "new 2");
}

#[test]
fn first_writer_wins_when_two_entries_render_to_one_path() {
    let (written, output) = run(
        &[("a${{ values.suffix }}.txt", "first"), ("a.txt", "second")],
        json!({"values": {"suffix": ""}}),
    );
    assert_eq!(output, tree(&[("a.txt", "first")]));
    assert_eq!(written, vec!["a.txt"]);
}

#[test]
fn rendered_paths_cannot_escape_the_target() {
    for name in ["..", "../outside", "x/../../y"] {
        let source = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        write_tree(source.path(), &[("${{ values.name }}/file.txt", "x")]);
        let err =
            template_tree(source.path(), target.path(), &options(json!({"values": {"name": name}})), &[])
                .unwrap_err();
        assert!(matches!(err, FetchError::PathEscapes { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains("leaves the target directory"), "{err}");
    }
}

#[test]
fn dot_segments_are_normalised_away() {
    let (written, output) = run(&[("${{ values.here }}/a.txt", "a")], json!({"values": {"here": "."}}));
    assert_eq!(output, tree(&[("a.txt", "a")]));
    assert_eq!(written, vec!["a.txt"]);
}

#[test]
fn symlinks_inside_the_skeleton_are_copied_as_symlinks() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("docs/real.md", "${{ values.x }}")]);
    symlink("real.md", source.path().join("docs/link.md")).unwrap();
    symlink("docs/real.md", source.path().join("top-link.md")).unwrap();
    let written =
        template_tree(source.path(), target.path(), &options(json!({"values": {"x": "R"}})), &[]).unwrap();
    assert_eq!(
        read_tree(target.path()),
        tree(&[
            ("docs/", ""),
            ("docs/link.md", "-> real.md"),
            ("docs/real.md", "R"),
            ("top-link.md", "-> docs/real.md")
        ])
    );
    assert_eq!(written, vec!["docs/link.md", "docs/real.md", "top-link.md"]);
}

#[test]
fn symlinks_pointing_outside_the_skeleton_are_refused() {
    for link_target in ["../outside.txt", "/etc/passwd", "a/../../x"] {
        let source = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        symlink(link_target, source.path().join("evil")).unwrap();
        let err = template_tree(source.path(), target.path(), &options(json!({})), &[]).unwrap_err();
        assert!(matches!(err, FetchError::SymlinkEscapes { .. }), "{link_target}: {err:?}");
        assert!(err.to_string().contains("points outside the template directory"), "{err}");
        let err = copy_tree(source.path(), target.path()).unwrap_err();
        assert!(matches!(err, FetchError::SymlinkEscapes { .. }), "{link_target}: {err:?}");
    }
}

#[test]
fn a_symlink_moved_up_by_rendering_may_not_reach_out() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    fs::create_dir_all(source.path().join("${{ values.dir }}")).unwrap();
    symlink("../sibling", source.path().join("${{ values.dir }}/link")).unwrap();
    let err = template_tree(source.path(), target.path(), &options(json!({"values": {"dir": "."}})), &[])
        .unwrap_err();
    assert!(matches!(err, FetchError::SymlinkEscapes { .. }), "{err:?}");
}

#[test]
fn writes_never_follow_symlinks_already_in_the_target() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("sub/file.txt", "x"), ("top.txt", "new")]);
    symlink(elsewhere.path(), target.path().join("sub")).unwrap();
    let err =
        template_tree(source.path(), target.path(), &options(json!({"replace": true})), &[]).unwrap_err();
    assert!(matches!(err, FetchError::SymlinkInTarget { .. }), "{err:?}");
    assert!(read_tree(elsewhere.path()).is_empty());

    // A symlink in the file's own place is replaced, not written through.
    let target = tempfile::tempdir().unwrap();
    let outside_file = elsewhere.path().join("victim.txt");
    fs::write(&outside_file, "safe").unwrap();
    symlink(&outside_file, target.path().join("top.txt")).unwrap();
    let source = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("top.txt", "new")]);
    template_tree(source.path(), target.path(), &options(json!({"replace": true})), &[]).unwrap();
    assert_eq!(fs::read_to_string(&outside_file).unwrap(), "safe");
    assert_eq!(fs::read_to_string(target.path().join("top.txt")).unwrap(), "new");
}

#[test]
fn target_inside_the_source_is_refused() {
    let source = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("a.txt", "a")]);
    let target = source.path().join("out/deeper");
    let err = template_tree(source.path(), &target, &options(json!({})), &[]).unwrap_err();
    assert!(matches!(err, FetchError::TargetInsideSource { .. }), "{err:?}");
    let err = copy_tree(source.path(), &target).unwrap_err();
    assert!(matches!(err, FetchError::TargetInsideSource { .. }), "{err:?}");
}

#[test]
fn rendering_errors_name_the_file() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("dir/broken.txt", "line\n${{ values.x | nosuchfilter }}")]);
    let err = template_tree(source.path(), target.path(), &options(json!({})), &[]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("dir/broken.txt"), "{message}");
    assert!(message.contains("nosuchfilter"), "{message}");
    assert!(message.contains("template:2"), "{message}");
}

#[test]
fn missing_source_is_an_error_not_a_panic() {
    let target = tempfile::tempdir().unwrap();
    let missing = target.path().join("nope");
    assert!(template_tree(&missing, &target.path().join("out"), &options(json!({})), &[]).is_err());
    assert!(copy_tree(&missing, &target.path().join("out")).is_err());
    let file = target.path().join("file.txt");
    fs::write(&file, "x").unwrap();
    let err = copy_tree(&file, &target.path().join("out")).unwrap_err();
    assert!(matches!(err, FetchError::NotADirectory { .. }), "{err:?}");
}

#[test]
fn trim_and_lstrip_blocks_apply_to_files() {
    let skeleton = [("list.yaml", "items:\n  {% for x in values.xs %}\n  - ${{ x }}\n  {% endfor %}\n")];
    let input = json!({"values": {"xs": ["a", "b"]}, "trimBlocks": true, "lstripBlocks": true});
    let (_, output) = run(&skeleton, input);
    assert_eq!(output, tree(&[("list.yaml", "items:\n  - a\n  - b\n")]));
}

#[test]
fn backstage_filters_work_in_files() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("slug.txt", "${{ values.repoUrl | projectSlug }}")]);
    let integrations = [Integration { host: "git.example.com".to_owned(), kind: IntegrationKind::Gitea }];
    let options = options(json!({"values": {"repoUrl": "git.example.com?owner=o&repo=r"}}));
    template_tree(source.path(), target.path(), &options, &integrations).unwrap();
    assert_eq!(fs::read_to_string(target.path().join("slug.txt")).unwrap(), "o/r");
}

#[test]
fn copy_tree_copies_everything_as_is() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    write_tree(
        source.path(),
        &[(".hidden", "h"), ("a/b/c.txt", "${{ not rendered }}"), ("empty/", ""), ("run.sh", "#!/bin/sh")],
    );
    fs::set_permissions(source.path().join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(source.path().join("a/b"), fs::Permissions::from_mode(0o700)).unwrap();
    symlink("b/c.txt", source.path().join("a/link")).unwrap();
    write_tree(target.path(), &[("a/b/c.txt", "old"), ("unrelated.txt", "stays")]);
    let destination = target.path();
    copy_tree(source.path(), destination).unwrap();
    assert_eq!(
        read_tree(destination),
        tree(&[
            (".hidden", "h"),
            ("a/", ""),
            ("a/b/", ""),
            ("a/b/c.txt", "${{ not rendered }}"),
            ("a/link", "-> b/c.txt"),
            ("empty/", ""),
            ("run.sh", "#!/bin/sh"),
            ("unrelated.txt", "stays"),
        ])
    );
    assert_eq!(mode_of(&destination.join("run.sh")), 0o750);
    assert_eq!(mode_of(&destination.join("a/b")), 0o700);
}

#[test]
fn copy_tree_creates_the_target() {
    let source = tempfile::tempdir().unwrap();
    let parent = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("x.txt", "x")]);
    let target = parent.path().join("new/nested");
    copy_tree(source.path(), &target).unwrap();
    assert_eq!(read_tree(&target), tree(&[("x.txt", "x")]));
}

#[test]
fn template_file_renders_one_file_and_honours_replace() {
    let source_dir = tempfile::tempdir().unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let source = source_dir.path().join("catalog-info.yaml");
    fs::write(&source, "name: ${{ values.name }}\n").unwrap();
    fs::set_permissions(&source, fs::Permissions::from_mode(0o640)).unwrap();
    let target = target_dir.path().join("deep/dir/catalog-info.yaml");

    template_file(&source, &target, &options(json!({"values": {"name": "one"}})), &[]).unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "name: one\n");
    assert_eq!(mode_of(&target), 0o640);

    template_file(&source, &target, &options(json!({"values": {"name": "two"}})), &[]).unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "name: one\n");

    template_file(&source, &target, &options(json!({"values": {"name": "three"}, "replace": true})), &[])
        .unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "name: three\n");
}

#[test]
fn template_file_in_cookiecutter_mode() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("in.txt");
    fs::write(&source, "{{ cookiecutter.name }}").unwrap();
    let target = dir.path().join("out.txt");
    template_file(
        &source,
        &target,
        &options(json!({"values": {"name": "c"}, "cookiecutterCompat": true})),
        &[],
    )
    .unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "c");
}

#[test]
fn template_file_refuses_binary_input() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("in.bin");
    fs::write(&source, [0xff, 0xfe]).unwrap();
    let err = template_file(&source, &dir.path().join("out"), &options(json!({})), &[]).unwrap_err();
    assert!(matches!(err, FetchError::NotText { .. }), "{err:?}");
}

#[test]
fn copy_tree_never_follows_symlinks_already_in_the_target() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("sub/file.txt", "x")]);
    symlink(elsewhere.path(), target.path().join("sub")).unwrap();
    let err = copy_tree(source.path(), target.path()).unwrap_err();
    assert!(matches!(err, FetchError::SymlinkInTarget { .. }), "{err:?}");
    assert!(read_tree(elsewhere.path()).is_empty());
}

#[test]
fn default_options_give_an_empty_values_object() {
    let (_, output) = {
        let source = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        write_tree(source.path(), &[("a.txt", "[${{ values.missing.deeper }}]")]);
        let written = template_tree(source.path(), target.path(), &TemplateOptions::default(), &[]).unwrap();
        (written, read_tree(target.path()))
    };
    assert_eq!(output, tree(&[("a.txt", "[]")]));
}
