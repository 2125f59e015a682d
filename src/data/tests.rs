//! Unit tests of CSV loading against models checked from source.

use super::*;
use crate::check::check;
use crate::syntax::parse;

/// The first model and data statement of `src` (which must check cleanly).
fn setup(src: &str) -> (Model, DataSpec) {
    let (file, parse_diags) = parse(src);
    assert!(parse_diags.is_empty(), "{parse_diags:?}");
    let (program, diags) = check(&file);
    assert!(diags.is_empty(), "{diags:?}");
    let spec = program
        .train
        .and_then(|t| t.data)
        .expect("the test source has a data statement");
    (program.models[0].clone(), spec)
}

const XOR: &str = "model xor { input 2; dense 4 tanh; dense 1 sigmoid; loss bce }\n\
                   train { data \"xor.csv\" target=y }";

const IRIS: &str = "model iris { input 2; dense 3 softmax; loss cross_entropy }\n\
                    train { data \"iris.csv\" target=class }";

const FILE: FileId = FileId(1);

#[test]
fn features_and_targets_are_row_major_in_file_order() {
    let (model, spec) =
        setup("model m { input 2; dense 2; loss mse }\ntrain { data \"d.csv\" target=[b, a] }");
    // Targets come in the order of target=[...], features in file order.
    let text = "a,x1,b,x2\n1,2,3,4\n5,6,7,8\n";
    let ds = load(text, FILE, &spec, &model).expect("valid data");
    assert_eq!(ds.rows, 2);
    assert_eq!(ds.feature_names, ["x1", "x2"]);
    assert_eq!(ds.target_names, ["b", "a"]);
    assert_eq!(ds.features, [2.0, 4.0, 6.0, 8.0]);
    assert_eq!(ds.targets, [3.0, 1.0, 7.0, 5.0]);
}

#[test]
fn spaces_quotes_and_crlf_are_accepted() {
    let (model, spec) = setup(XOR);
    let text = "x1, x2 ,\"y\"\r\n0, 1,1\r\n\"1\",0 ,1\r\n";
    let ds = load(text, FILE, &spec, &model).expect("valid data");
    assert_eq!(ds.features, [0.0, 1.0, 1.0, 0.0]);
    assert_eq!(ds.targets, [1.0, 1.0]);
}

#[test]
fn a_bad_cell_is_reported_at_its_position_in_the_csv() {
    let (model, spec) = setup(XOR);
    let text = "x1,x2,y\n0,0,0\n0,  abc ,1\n";
    let diags = load(text, FILE, &spec, &model).expect_err("abc is not a number");
    assert_eq!(diags.len(), 1);
    let label = diags[0].primary.as_ref().expect("cell errors have a place");
    assert_eq!(label.file, FILE);
    assert_eq!(&text[label.span.start..label.span.end], "abc");
    assert_eq!(crate::diag::line_col(text, label.span.start), (3, 5));
}

#[test]
fn class_indices_are_checked_against_the_output_width() {
    let (model, spec) = setup(IRIS);
    let ok = load("a,b,class\n0,0,0\n0,0,2\n", FILE, &spec, &model).expect("classes 0..2");
    assert_eq!(ok.targets, [0.0, 2.0]);
    let diags = load("a,b,class\n0,0,3\n0,0,-1\n0,0,0.5\n", FILE, &spec, &model)
        .expect_err("3, -1 and 0.5 are not classes of 3 outputs");
    let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "class index '3' is out of range",
            "class index '-1' is out of range",
            "class index '0.5' is not a whole number"
        ]
    );
}

#[test]
fn header_and_shape_problems() {
    let (model, spec) = setup(XOR);
    let first = |text: &str| {
        load(text, FILE, &spec, &model).expect_err("the data is wrong")[0]
            .message
            .clone()
    };
    assert_eq!(first(""), "data file 'xor.csv' is empty");
    assert_eq!(first("1,2,3\n"), "'xor.csv' has no header row");
    assert_eq!(first("x1,x2,y\n"), "'xor.csv' has no data rows");
    assert_eq!(first("x1,x2,t\n0,0,0\n"), "no column 'y' in 'xor.csv'");
    assert_eq!(
        first("x1,x2,x3,y\n0,0,0,0\n"),
        "'xor.csv' has 3 feature columns but model 'xor' takes 2 inputs"
    );
    assert_eq!(
        first("x1,x2,y\n0,0\n"),
        "row has 2 cells, but the header has 3 columns"
    );
    assert_eq!(first("x1,x2,y\n0,0,NaN\n"), "'NaN' is not a finite number");
    assert_eq!(
        first("x1,x2,y\n0,0,1.5\n"),
        "bce target '1.5' is not between 0 and 1"
    );
}

#[test]
fn prediction_data_may_leave_out_the_targets() {
    let (model, spec) = setup(XOR);
    let ds = load_for_predict("x1,x2\n0,1\n", FILE, &spec, &model).expect("targets optional");
    assert_eq!(ds.n_targets(), 0);
    assert_eq!(ds.features, [0.0, 1.0]);
    let ds = load_for_predict("x1,x2,y\n0,1,1\n", FILE, &spec, &model).expect("targets given");
    assert_eq!(ds.targets, [1.0]);
    // Training data must have them.
    assert!(load("x1,x2\n0,1\n", FILE, &spec, &model).is_err());
}

#[test]
fn too_many_bad_cells_are_summarised() {
    let (model, spec) = setup(XOR);
    let text: String = std::iter::once("x1,x2,y\n".to_string())
        .chain((0..25).map(|i| format!("bad{i},0,1\n")))
        .collect();
    let diags = load(&text, FILE, &spec, &model).expect_err("25 bad cells");
    assert_eq!(diags.len(), MAX_CELL_ERRORS);
    let last = diags.last().expect("ten diagnostics");
    assert_eq!(last.notes, ["15 more problems in 'xor.csv' are not shown"]);
}
